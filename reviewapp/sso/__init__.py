"""Single sign-on with OpenID Connect (mozilla-django-oidc), configured from the environment.

``config``: the settings read and checked; ``discovery``: the provider's endpoints from its
``/.well-known/openid-configuration``; ``backend``: the library's backend with Reviewdesk's rules
(audience, issuer, accounts by subject, role map); ``services``: the role map applied to memberships;
``views``: the sign-in page, the SSO start and callback, and the page that says why SSO refused.
"""
