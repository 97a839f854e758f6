import os

from django.core.wsgi import get_wsgi_application

# An entry point is what a server runs: without a word, it runs as deployed (manage.py defaults to local).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_wsgi_application()
