from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

# Django's own admin sign-in asks for a password alone and counts no failures: every sign-in goes
# through allauth instead (rate limits, the second factor), and the admin sends people there.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("sharing.urls")),
]
