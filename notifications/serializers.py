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
