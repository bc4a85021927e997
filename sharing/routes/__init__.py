"""URL patterns by area, included from sharing/urls.py, so each area's routes live beside each other."""
