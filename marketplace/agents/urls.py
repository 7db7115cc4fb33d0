"""Routes of the agents app, mounted under /api/v1/ by broker/urls.py."""

from django.urls import path

from marketplace.agents.api import AgentCollectionView, AgentRegisterView, AgentRotateSecretView

urlpatterns = [
    path("agents/", AgentCollectionView.as_view(), name="agents"),
    path("agents/register/", AgentRegisterView.as_view(), name="agent-register"),
    path("agents/<int:pk>/rotate-secret/", AgentRotateSecretView.as_view(), name="agent-rotate-secret"),
]
