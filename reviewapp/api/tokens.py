"""Your API tokens. Only a signed-in person manages them; a token cannot mint or list tokens."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from reviewapp.api.base import ApiRequest, BaseApi, SessionOnly
from reviewapp.api.serializers import TokenSerializer, ValidationErrorSerializer
from reviewapp.errors import ValidationFailed
from reviewapp.models import ApiToken
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.selectors.tokens import api_token_get_for_user, api_token_list_for_user
from reviewapp.services.tokens import api_token_create, api_token_revoke
from reviewapp.typed_input import field_error


class TokenListApi(BaseApi):
    permission_classes = [SessionOnly]

    @extend_schema(
        operation_id="tokens_list",
        tags=["tokens"],
        summary="Your API tokens",
        description="Session authentication only.",
        responses=TokenSerializer(many=True),
    )
    def get(self, request: ApiRequest) -> Response:
        tokens = api_token_list_for_user(user=request.user)
        return Response(TokenSerializer(tokens, many=True).data)


class TokenCreateApi(BaseApi):
    permission_classes = [SessionOnly]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiToken.Scope.choices), min_length=1)
        project = serializers.SlugField(
            required=False, allow_null=True, default=None, help_text="Pin the token to this project's slug."
        )

    class OutputSerializer(TokenSerializer):
        token = serializers.CharField(help_text="The secret token. It is shown only in this response.")

    @extend_schema(
        operation_id="tokens_create",
        tags=["tokens"],
        summary="Create an API token",
        description="Session authentication only. The plaintext token is in this response and never again.",
        request=InputSerializer,
        responses={201: OutputSerializer, 400: ValidationErrorSerializer},
    )
    def post(self, request: ApiRequest) -> Response:
        serializer = TokenCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = None
        if data["project"]:
            try:
                project = project_get_for_user(user=request.user, slug=data["project"], capability=Capability.VIEW)
            except Http404:
                raise ValidationFailed(
                    [field_error("project", "No such project among yours.")],
                    "The token could not be created.",
                ) from None
        token, raw = api_token_create(user=request.user, name=data["name"], scopes=data["scopes"], project=project)
        token.token = raw  # type: ignore[attr-defined]
        return Response(TokenCreateApi.OutputSerializer(token).data, status=status.HTTP_201_CREATED)


class TokensApi(TokenCreateApi, TokenListApi):
    """``/tokens/``: GET is TokenListApi, POST is TokenCreateApi."""


class TokenRevokeApi(BaseApi):
    permission_classes = [SessionOnly]

    @extend_schema(
        operation_id="tokens_revoke",
        tags=["tokens"],
        summary="Revoke one of your tokens",
        description="Session authentication only. Revoking twice is harmless.",
        responses={204: OpenApiResponse(description="Revoked.")},
    )
    def delete(self, request: ApiRequest, pk: int) -> Response:
        token = api_token_get_for_user(user=request.user, pk=pk)
        api_token_revoke(token=token, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
