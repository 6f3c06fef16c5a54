"""/v1/channels (docs/api.md, Channels). Channels belong to the token's (account, application)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from accounts.openapi import error_responses
from accounts.rest import CronofyApiView, CronofyValidationError
from accounts.throttling import Limit, retry_after_header, seconds_until_allowed
from calendars.changes import CursorExpired, InvalidCursor, current_head, resolve_cursor
from notifications import services
from notifications.models import Channel
from notifications.serializers import (
    ChannelCreateSerializer,
    ChannelListResponseSerializer,
    ChannelReplayResponseSerializer,
    ChannelReplaySerializer,
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


def _callers_channel(view: CronofyApiView, channel_id: str) -> Channel:
    channel = (
        Channel.objects.for_caller(view.account, view.caller.application)
        .filter(public_id=channel_id)
        .first()
    )
    if channel is None:
        raise exceptions.NotFound()
    return channel


class ChannelReplayView(CronofyApiView):
    """POST re-sends `change` notifications from a cursor or a time (docs/api.md, Replay)."""

    @extend_schema(
        operation_id="replay_channel",
        request=ChannelReplaySerializer,
        responses={200: ChannelReplayResponseSerializer, **error_responses(404, 410, 422)},
        tags=["channels"],
    )
    def post(self, request, channel_id: str):
        channel = _callers_channel(self, channel_id)
        body = ChannelReplaySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            after = self._start(body.validated_data)
        except CursorExpired:
            return Response(CursorExpired.BODY, status=410)
        if not channel.is_open:  # refused before it may spend one of the hour's replays
            raise _channel_closed()
        wait = seconds_until_allowed(
            [
                Limit(
                    "channel-replay",
                    channel.public_id,
                    settings.CHANNEL_REPLAY_RATE_LIMIT_PER_HOUR,
                    period=3600,
                )
            ]
        )
        if wait:
            return Response(
                {"error": "too_many_requests"},
                status=429,
                headers={"Retry-After": retry_after_header(wait)},
            )
        try:
            queued = services.replay_changes(channel=channel, after_sequence=after)
        except services.ChannelNotOpen:  # closed meanwhile
            raise _channel_closed() from None
        through = queued[-1].changes_through_sequence if queued else after
        return Response(
            {
                "notifications": len(queued),
                "changes_after_sequence": after,
                "changes_through_sequence": through,
            }
        )

    def _start(self, data) -> int:
        """The sequence after which to replay. Raises CursorExpired."""
        if data.get("cursor"):
            try:
                return resolve_cursor(
                    data["cursor"], account=self.account, application=self.caller.application
                )
            except InvalidCursor:
                raise CronofyValidationError.single(
                    "cursor", "errors.invalid_cursor", "not a cursor issued to this token"
                ) from None
        since = data["since"]
        if since < timezone.now() - timedelta(days=settings.CHANGE_LOG_RETENTION_DAYS):
            raise CursorExpired
        found = services.sequence_before(account=self.account, moment=since)
        # Nothing changed since then: the replay starts (and ends) at the head.
        return current_head(self.account) if found is None else found


def _channel_closed() -> CronofyValidationError:
    return CronofyValidationError.single(
        "channel_id", "errors.channel_closed", "the channel is closed: open a new one"
    )
