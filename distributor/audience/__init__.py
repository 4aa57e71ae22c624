"""Journalists, beats, subscriptions with consent evidence, media lists and suppressions."""
