from distributor import create_app

app = create_app()
