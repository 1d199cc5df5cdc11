from django.urls import path

from auth_service.api import views

urlpatterns = [
    path("health/", views.HealthView.as_view(), name="health"),
    path("auth/client/", views.ClientTokenView.as_view(), name="client-token"),
    path("auth/enrollment/", views.EnrollmentSessionView.as_view(), name="enrollment"),
    path("auth/authentication/", views.AuthenticationSessionView.as_view(), name="authentication"),
    path(
        "auth/sessions/<str:session_id>/status/",
        views.SessionStatusView.as_view(),
        name="session-status",
    ),
    path(
        "auth/sessions/<str:session_id>/cancel/",
        views.SessionCancelView.as_view(),
        name="session-cancel",
    ),
    path(
        "auth/sessions/<str:session_id>/webhooks/",
        views.SessionWebhooksView.as_view(),
        name="session-webhooks",
    ),
    path("auth/webhook/", views.WebhookEndpointView.as_view(), name="webhook"),
    path("auth/users/", views.UserListView.as_view(), name="users"),
    path("auth/users/<str:user_id>/", views.UserDetailView.as_view(), name="user-detail"),
]
