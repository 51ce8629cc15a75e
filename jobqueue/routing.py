"""The websocket routes of jobqueue's live admin pages, mounted by the site's ASGI routing::

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from jobqueue.routing import websocket_urlpatterns

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AllowedHostsOriginValidator(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    ),
})
"""

from django.urls import path

from .live.consumer import LiveConsumer

websocket_urlpatterns = [path("jobqueue/live/", LiveConsumer.as_asgi())]
