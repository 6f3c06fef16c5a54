"""/v1/channels (docs/api.md, Channels). Channels belong to the token's (account, application)."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from accounts.openapi import error_responses
from accounts.rest import CronofyApiView, CronofyValidationError
from notifications import services
from notifications.models import Channel
from notifications.serializers import (
    ChannelCreateSerializer,
    ChannelListResponseSerializer,
    ChannelResponseSerializer,
)


class ChannelListView(CronofyApiView):
    """GET lists the caller's open channels; POST creates one (200 with the channel)."""

    @extend_schema(
        operation_id="list_channels", responses=ChannelListResponseSerializer, tags=["channels"]
    )
    def get(self, request):
        channels = (
            Channel.objects.for_caller(self.account, self.caller.application)
            .open()
            .order_by("created_at", "pk")
        )
        return Response({"channels": [channel.wire() for channel in channels]})

    @extend_schema(
        operation_id="create_channel",
        request=ChannelCreateSerializer,
        responses={200: ChannelResponseSerializer, **error_responses(422)},
        tags=["channels"],
    )
    def post(self, request):
        serializer = ChannelCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        filters = serializer.validated_data.get("filters") or {}
        try:
            channel = services.create_channel(
                account=self.account,
                application=self.caller.application,
                callback_url=serializer.validated_data["callback_url"],
                calendar_ids=filters.get("calendar_ids"),
                only_managed=filters.get("only_managed", False),
            )
        except services.ChannelError as exc:
            raise CronofyValidationError.single(exc.field, exc.key, exc.description) from None
        return Response({"channel": channel.wire()})


class ChannelDetailView(CronofyApiView):
    """DELETE closes the channel (202); another caller's or unknown channel is a 404."""

    @extend_schema(
        operation_id="close_channel",
        request=None,
        responses={202: None, **error_responses(404)},
        tags=["channels"],
    )
    def delete(self, request, channel_id: str):
        channel = (
            Channel.objects.for_caller(self.account, self.caller.application)
            .filter(public_id=channel_id)
            .first()
        )
        if channel is None:
            raise exceptions.NotFound()
        services.close_channel(channel=channel)
        return Response(status=202)
