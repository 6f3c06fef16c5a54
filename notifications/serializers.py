from rest_framework import serializers


class ChannelFiltersSerializer(serializers.Serializer):
    """Known filter keys; unknown ones are ignored (some SDKs send extra keys)."""

    calendar_ids = serializers.ListField(
        # Not trimmed: ids are compared exactly.
        child=serializers.CharField(min_length=1, max_length=64, trim_whitespace=False),
        required=False,
        max_length=1000,
    )
    only_managed = serializers.BooleanField(required=False, default=False)


class ChannelCreateSerializer(serializers.Serializer):
    # Not trimmed: the URL is validated (and later used) exactly as given.
    callback_url = serializers.CharField(trim_whitespace=False, max_length=4096)
    filters = ChannelFiltersSerializer(required=False)


# Response shapes, for the OpenAPI document only (bodies are built by Channel.wire()).
class ChannelSerializer(serializers.Serializer):
    channel_id = serializers.CharField()
    callback_url = serializers.CharField()
    filters = ChannelFiltersSerializer()


class ChannelResponseSerializer(serializers.Serializer):
    channel = ChannelSerializer()


class ChannelListResponseSerializer(serializers.Serializer):
    channels = ChannelSerializer(many=True)


class ChannelReplaySerializer(serializers.Serializer):
    """POST /v1/channels/{id}/replay: replay from a cursor or from a time (exactly one)."""

    exactly_one_of = ("cursor", "since")  # accounts/openapi.py

    cursor = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=64,
        help_text="A next_cursor of /v1/changes or of a `change` notification",
    )
    since = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Replay changes made at or after this time"
    )

    def validate(self, attrs):
        given = [name for name in self.exactly_one_of if attrs.get(name) not in (None, "")]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"cursor": ["give exactly one of cursor and since"]}, code="required"
            )
        return attrs


class ChannelReplayResponseSerializer(serializers.Serializer):
    notifications = serializers.IntegerField(help_text="change notifications queued")
    changes_after_sequence = serializers.IntegerField(help_text="The replay starts after this")
    changes_through_sequence = serializers.IntegerField(help_text="…and ends here (the head)")
