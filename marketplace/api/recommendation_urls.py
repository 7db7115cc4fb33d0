from django.urls import path

from marketplace.api.recommendations import RecommendationView

urlpatterns = [
    path("recommendations/", RecommendationView.as_view(), name="recommendations"),
]
