from distributor import create_app

celery = create_app().extensions["celery"]
