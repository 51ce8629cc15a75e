from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.generic import RedirectView


def demo_page(request: HttpRequest) -> HttpResponse:
    """The demo page. Its module, and the example tasks it imports, load on the first visit:
    importing tasks checks them against TASKS, and the URLconf must load whatever TASKS says,
    so that ``manage.py check`` can report what is wrong with it."""
    from project.views import demo_page as view

    return view(request)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("demo/", demo_page, name="demo"),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
