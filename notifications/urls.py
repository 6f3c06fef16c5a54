from django.urls import path

from notifications import api

urlpatterns = [
    path("v1/channels", api.ChannelListView.as_view(), name="channels"),
    path("v1/channels/<str:channel_id>", api.ChannelDetailView.as_view(), name="channel-detail"),
    path(
        "v1/channels/<str:channel_id>/replay",
        api.ChannelReplayView.as_view(),
        name="channel-replay",
    ),
]
