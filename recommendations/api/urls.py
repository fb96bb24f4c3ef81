"""URLs of the recommender's HTTP API (included under /api/ by the project)."""

from django.urls import path

from recommendations.api import privacy as privacy_views
from recommendations.api import profiles as profile_views
from recommendations.api import views as serving_views

urlpatterns = [
    # serving
    path("recommendations/", serving_views.RecommendationsView.as_view(), name="recommendations"),
    path(
        "recommendations/not-interested/",
        serving_views.NotInterestedView.as_view(),
        name="recommendations-not-interested",
    ),
    path("items/popular/", serving_views.PopularItemsView.as_view(), name="items-popular"),
    path("items/<str:key>/similar/", serving_views.SimilarItemsView.as_view(), name="items-similar"),
    # profiles: "me/" comes first, it must win over a username of "me"
    path("profiles/me/", profile_views.MyProfileView.as_view(), name="profile-me"),
    path("profiles/<str:username>/", profile_views.ProfileDetailView.as_view(), name="profile-detail"),
    # privacy (staff)
    path(
        "privacy/users/<str:username>/export/",
        privacy_views.UserDataExportView.as_view(),
        name="privacy-user-export",
    ),
]
