"""The demo RAG outputs: Lumen customers' questions answered by two versions of the assistant.

Each :class:`Case` is one customer question with the chunks the retriever returned for it (cited
as ``<doc_uri>#<anchor>``, see :mod:`reviewapp.demo.corpus`) and one answer per model version.
Version "1" is the old prompt + model: it often contradicts the context, adds claims the context
does not make, or stops short. Version "2" is mostly right and grounded, with a few deliberate
slips (two subtle factual errors, one incomplete answer, one claim from outside the context), so
reviewers have something to find in both. ``expected_facts`` and ``intended_issue`` are the demo
author's answer key, kept for evaluations and never ingested (reviewers must not see them).
"""

# ruff: noqa: RUF001 - the answers are prose for people: en dashes and multiplication signs are intended
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from reviewapp.demo.corpus import chunk_get

MODEL_NAME = "support-assistant"
MODEL_VERSIONS = ("1", "2")
SOURCE = "demo"
SYSTEM_PROMPT = (
    "You are Lumen's support assistant. Answer only from the help-centre excerpts you are given. "
    "If they do not cover the question, say so and offer to hand the conversation to a human."
)

Turns = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Case:
    key: str
    topic: str
    channel: str
    request: str | Turns  # plain text, or the (role, content) turns of a chat ending with the user
    context: tuple[str, ...]
    v1: str
    v2: str
    expected_facts: tuple[str, ...]
    intended_issue: tuple[str, str]  # the demo author's label for v1 and v2 (the "issue" choices)

    def response(self, version: str) -> str:
        return self.v1 if version == "1" else self.v2

    def request_value(self) -> str | dict[str, Any]:
        if isinstance(self.request, str):
            return self.request
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        messages += [{"role": role, "content": content} for role, content in self.request]
        return {"messages": messages}


def chat(*turns: str) -> Turns:
    """Alternate user / assistant turns, starting and ending with the user."""
    return tuple(("user" if i % 2 == 0 else "assistant", text) for i, text in enumerate(turns))


CASES: tuple[Case, ...] = (
    # --- billing ---------------------------------------------------------------------------
    Case(
        key="refund-annual-day-10",
        topic="billing",
        channel="widget",
        request="We bought the annual Team plan 10 days ago but we're switching tools. Can we get our money back?",
        context=(
            "kb/billing/refunds.md#refund-window-for-annual-plans",
            "kb/billing/refunds.md#how-to-request-a-refund",
            "kb/billing/plans.md#changing-plans",
        ),
        v1=(
            "Unfortunately Lumen doesn't offer refunds on annual plans. You can cancel your subscription so that it "
            "doesn't renew next year, and you'll keep access until then."
        ),
        v2=(
            "Yes. Annual plans can be refunded in full within **14 days** of purchase, and you're on day 10, so "
            "you're inside the window.\n\n"
            "A workspace owner can request it in **Settings → Billing → Invoices**: pick the invoice and click "
            "**Request refund**. Alternatively, email billing@lumen.example from the owner's address with the "
            "invoice number (it starts with `LUM-`). The refund goes back to the original payment method within "
            "5–10 business days, tax included in proportion."
        ),
        expected_facts=(
            "Annual plans are refundable in full within 14 days of purchase.",
            "Only a workspace owner can request the refund (Settings → Billing → Invoices, or billing@lumen.example).",
            "Refunds reach the original payment method within 5–10 business days.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="refund-monthly-charge",
        topic="billing",
        channel="email",
        request="I forgot to cancel our monthly plan and we got charged yesterday. Can I get a refund please?",
        context=(
            "kb/billing/refunds.md#monthly-plans",
            "kb/billing/refunds.md#cancelling-a-subscription",
            "kb/billing/refunds.md#how-to-request-a-refund",
        ),
        v1=(
            "Sure! Monthly plans can be refunded within 14 days of the charge. Go to Settings → Billing and click "
            "Request refund, and you'll get your money back in 5–10 business days."
        ),
        v2=(
            "I'm sorry, monthly subscriptions aren't refunded, including partial months, so yesterday's charge "
            "can't be refunded.\n\n"
            "To avoid the next charge, an owner can cancel now in **Settings → Billing → Plan → Cancel "
            "subscription**. You keep the paid features until the end of the month you've paid for; then the "
            "workspace moves to the Free plan, and no content is deleted.\n\n"
            "(If you had cancelled *before* the charge and were still billed, that charge would always be refunded.)"
        ),
        expected_facts=(
            "Monthly subscriptions are not refunded, including partial months.",
            "Cancelling stops the next renewal; paid features last until the end of the paid period.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="seats-added-mid-year",
        topic="billing",
        channel="chat",
        request=chat(
            "Hi, we're on Team, billed annually, with 12 seats.",
            "Thanks! How can I help with your Team plan?",
            "If I add 3 people now, halfway through the year, what will we pay?",
        ),
        context=(
            "kb/billing/plans.md#adding-and-removing-members",
            "kb/billing/plans.md#plan-comparison",
            "kb/billing/plans.md#changing-plans",
        ),
        v1=(
            "Adding members to an annual plan costs the full annual price per member ($96 each), charged "
            "immediately to your card. So 3 members would be $288."
        ),
        v2=(
            "You'll pay a prorated amount for the rest of your billing period, added to your next invoice. Team "
            "billed annually is $8 per member per month, so 3 members for the remaining ~6 months comes to about "
            "3 × $8 × 6 = **$144** before tax."
        ),
        expected_facts=(
            "Members added mid-period are charged a prorated amount on the next invoice.",
            "Team billed annually costs $8 per member per month.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="seat-removal-credit",
        topic="billing",
        channel="chat",
        request="If I remove someone from our workspace, do we get money back for their seat right away?",
        context=(
            "kb/billing/plans.md#adding-and-removing-members",
            "kb/billing/refunds.md#refund-window-for-annual-plans",
        ),
        v1=(
            "Yes. When you remove a member, Lumen immediately credits the unused part of their seat to your "
            "account, and the credit is used on your next invoice."
        ),
        v2=(
            "Not right away. Removing a member frees the seat immediately, so you can give it to someone else, but "
            "seats aren't credited back before the end of the billing period. On an annual plan the seat count is "
            "reduced at renewal.\n\nTip: deactivated members don't count as seats either."
        ),
        expected_facts=(
            "Removing a member frees the seat immediately but is not credited before the end of the period.",
            "On annual plans the seat count is reduced at renewal.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="failed-payment-read-only",
        topic="billing",
        channel="widget",
        request="Our card expired and now nobody can edit pages!! Did we lose our data??",
        context=(
            "kb/billing/invoices-and-payments.md#failed-payments",
            "kb/exports/exporting-content.md#exports-and-read-only-workspaces",
            "kb/data/retention-and-deletion.md#trash",
        ),
        v1=(
            "Don't worry, your data is safe for now. Lumen keeps a workspace for 30 days after a failed payment; "
            "after that it is deleted. Please update your card as soon as possible to keep it."
        ),
        v2=(
            "No, nothing has been deleted. After a failed card payment Lumen retries 3 times over 7 days; when the "
            "last retry fails, the workspace becomes **read-only**, which is what you're seeing.\n\n"
            "Update the card in **Settings → Billing → Payment method**: the charge is retried immediately and "
            "editing comes back as soon as it succeeds. Meanwhile everyone can still view and export content."
        ),
        expected_facts=(
            "After the last failed retry the workspace becomes read-only; nothing is deleted.",
            "Updating the card retries the charge immediately and restores editing.",
        ),
        intended_issue=("ungrounded", "none"),
    ),
    Case(
        key="vat-number-past-invoice",
        topic="billing",
        channel="email",
        request="How do I add our VAT number to our invoices? We need it on last month's invoice as well.",
        context=(
            "kb/billing/invoices-and-payments.md#finding-and-editing-invoices",
            "kb/billing/invoices-and-payments.md#payment-methods",
        ),
        v1=(
            "Go to Settings → Billing → Billing details and add your VAT number. It will be added to all your "
            "invoices, including past ones, within a few minutes."
        ),
        v2=(
            "Add it under **Settings → Billing → Billing details** (owners and billing admins can do this). That "
            "change applies to future invoices only. For last month's invoice, write to billing@lumen.example: "
            "past invoices can be corrected within 60 days of their date."
        ),
        expected_facts=(
            "The VAT number is added in Settings → Billing → Billing details and applies to future invoices.",
            "A past invoice can be corrected by billing@lumen.example within 60 days of its date.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="bank-transfer-12-seats",
        topic="billing",
        channel="email",
        request="Can we pay by bank transfer instead of card? We're a 12-person team on Business, billed annually.",
        context=(
            "kb/billing/invoices-and-payments.md#payment-methods",
            "kb/billing/plans.md#plan-comparison",
        ),
        v1="Yes, bank transfer is available on all annual plans. Contact billing@lumen.example to switch.",
        v2=(
            "Bank transfer against an invoice (net 30) is available on annual Business and Enterprise plans with "
            "**at least 20 seats**. With 12 seats you'll need to pay by card for now: Visa, Mastercard or American "
            "Express. Once you reach 20 seats, ask billing@lumen.example to switch."
        ),
        expected_facts=(
            "Bank transfer needs an annual Business or Enterprise plan with at least 20 seats.",
            "Cards accepted: Visa, Mastercard, American Express.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="trial-ends-six-members",
        topic="billing",
        channel="widget",
        request="What happens when our 14-day Business trial ends? There are 6 of us in the workspace.",
        context=(
            "kb/billing/plans.md#free-trial",
            "kb/billing/plans.md#plan-comparison",
            "kb/exports/exporting-content.md#exports-and-read-only-workspaces",
        ),
        v1=(
            "When the trial ends your workspace is downgraded to Free. Pages created during the trial are kept "
            "for 30 days and then deleted unless you upgrade, so make sure to add a card."
        ),
        v2=(
            "If no payment method has been added, the workspace moves to the Free plan when the trial ends. Your "
            "content is never deleted, but Free allows up to 3 members, so with 6 people the workspace becomes "
            "**read-only** until you upgrade or remove members. You can still export everything while it's "
            "read-only. Adding a card before the trial ends avoids the interruption."
        ),
        expected_facts=(
            "Without a payment method the workspace moves to Free when the trial ends.",
            "Content is never deleted; a workspace with more than 3 members becomes read-only.",
        ),
        intended_issue=("ungrounded", "none"),
    ),
    # --- SSO and account security -----------------------------------------------------------
    Case(
        key="sso-okta-setup",
        topic="sso",
        channel="chat",
        request="How do I set up SSO with Okta?",
        context=(
            "kb/account/sso-saml.md#setting-up-sso",
            "kb/account/sso-saml.md#availability-and-supported-providers",
            "kb/account/sso-saml.md#enforcing-sso",
        ),
        v1=(
            "To set up SSO, go to Settings → Security → Single sign-on, click **Connect Okta** and sign in with "
            "your Okta admin account. SSO is available on all paid plans."
        ),
        v2=(
            "SSO uses SAML 2.0 and needs the **Business** or **Enterprise** plan; only owners and admins can "
            "configure it.\n\n"
            "1. **Verify your domain**: in Settings → Security → Domains, add the TXT record "
            "`lumen-verification=<code>` to your DNS (usually a few minutes, up to 48 hours).\n"
            "2. **Connect Okta**: in Settings → Security → Single sign-on, upload Okta's metadata XML, or paste "
            "the SSO URL and the X.509 certificate.\n"
            "3. **Test** with *Test sign-in* before you enforce SSO.\n\n"
            "Lumen also has a step-by-step guide for Okta."
        ),
        expected_facts=(
            "SAML SSO needs the Business or Enterprise plan.",
            "Steps: verify the domain with a DNS TXT record, upload the IdP metadata, test sign-in.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="sso-oidc-keycloak",
        topic="sso",
        channel="email",
        request="Our identity provider is Keycloak and we use OpenID Connect. Will that work with Lumen's SSO?",
        context=(
            "kb/account/sso-saml.md#availability-and-supported-providers",
            "kb/account/sso-saml.md#setting-up-sso",
        ),
        v1="Yes, Lumen supports any identity provider, including Keycloak, over SAML or OIDC.",
        v2=(
            "Not over OpenID Connect: Lumen's SSO supports SAML 2.0 only. Keycloak can also act as a SAML 2.0 "
            "identity provider, though, and any SAML 2.0 provider works with Lumen on the Business and "
            "Enterprise plans, so you can add a SAML client for Lumen in Keycloak."
        ),
        expected_facts=("Lumen SSO supports SAML 2.0 only; OIDC is not supported.",),
        intended_issue=("incorrect", "ungrounded"),
    ),
    Case(
        key="sso-idp-outage",
        topic="sso",
        channel="chat",
        request=chat("We enforced SSO last week and now Okta is down. Is everyone locked out of Lumen?"),
        context=(
            "kb/account/sso-saml.md#enforcing-sso",
            "kb/account/two-factor-authentication.md#requiring-2fa-for-a-workspace",
        ),
        v1=(
            "Yes. Once SSO is enforced, nobody can sign in until your identity provider is back. You can contact "
            "Lumen support and ask them to turn off SSO enforcement temporarily."
        ),
        v2=(
            "Members on your verified domains can't sign in while Okta is down, but **workspace owners keep "
            "password sign-in** as a break-glass fallback. An owner can sign in with their password and, if "
            "needed, switch off enforcement in Settings → Security → Single sign-on until Okta recovers. Guests "
            "aren't affected."
        ),
        expected_facts=(
            "Owners keep password sign-in as a break-glass fallback when SSO is enforced.",
            "Enforcement can be switched off in Settings → Security → Single sign-on.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="scim-deprovisioned-user",
        topic="sso",
        channel="email",
        request="When we deactivate someone in Entra ID, what happens to their Lumen pages and their seat?",
        context=(
            "kb/account/sso-saml.md#scim-provisioning",
            "kb/billing/plans.md#adding-and-removing-members",
        ),
        v1=("Their Lumen account is deleted together with their private pages, and the seat is refunded to your card."),
        v2=(
            "With SCIM provisioning (Business or Enterprise, with Okta or Entra ID), a user you deprovision in "
            "Entra ID is deactivated in Lumen within a few minutes. Their pages stay in the workspace and keep "
            "their authorship, and deactivated users don't use a seat."
        ),
        expected_facts=(
            "Deprovisioned users are deactivated within minutes.",
            "Their pages stay and keep their authorship; deactivated users use no seat.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="2fa-lost-phone-only-owner",
        topic="account",
        channel="chat",
        request=chat(
            "I lost my phone with the authenticator app on it.",
            "Sorry to hear that! Do you still have your recovery codes?",
            "I don't think so. I'm also the only owner of the workspace. How do I get back in?",
        ),
        context=(
            "kb/account/two-factor-authentication.md#lost-device",
            "kb/account/two-factor-authentication.md#turning-on-2fa",
        ),
        v1="Use one of your recovery codes to sign in, then set up 2FA again on your new phone.",
        v2=(
            "Without recovery codes, someone has to reset your 2FA. Owners can't reset their own 2FA, and as the "
            "only owner there's no other owner to do it, so contact Lumen support: they'll reset it after an "
            "identity check, which takes up to 3 business days. Once you're in, set up 2FA again and store the "
            "new recovery codes somewhere safe."
        ),
        expected_facts=(
            "Owners cannot reset their own 2FA.",
            "Lumen support resets it after an identity check of up to 3 business days.",
        ),
        intended_issue=("incomplete", "none"),
    ),
    Case(
        key="2fa-require-on-team",
        topic="account",
        channel="widget",
        request="Can I force all members to use 2FA on the Team plan?",
        context=(
            "kb/account/two-factor-authentication.md#requiring-2fa-for-a-workspace",
            "kb/billing/plans.md#plan-comparison",
        ),
        v1=(
            "Requiring 2FA for every member is a Business feature. On Team, each member can turn on 2FA for "
            "themselves in their account settings."
        ),
        v2=(
            "Yes. On Team (and on Business and Enterprise), owners and admins can turn on **Settings → Security → "
            "Require two-factor**. Members who don't have 2FA yet are asked to set it up at their next sign-in and "
            "can't open the workspace until they do."
        ),
        expected_facts=("Owners and admins can require 2FA on Team, Business and Enterprise.",),
        intended_issue=("incorrect", "none"),
    ),
    # --- sharing ----------------------------------------------------------------------------
    Case(
        key="guests-on-team",
        topic="sharing",
        channel="chat",
        request=chat("How many guests can we invite on the Team plan, and do they cost anything?"),
        context=(
            "kb/sharing/permissions-and-guests.md#guests",
            "kb/billing/plans.md#plan-comparison",
        ),
        v1="Team includes up to 250 guests. Guests are billed at a reduced rate of $4 per guest per month.",
        v2=(
            "Team allows up to **50 guests**, and guests are free: they don't use paid seats. A guest sees only "
            "the pages shared with them and can't browse spaces or search the workspace. (Business allows 250 "
            "guests and Enterprise an unlimited number.)"
        ),
        expected_facts=("Team allows up to 50 guests.", "Guests don't use paid seats."),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="public-link-password-team",
        topic="sharing",
        channel="widget",
        request="Can I password-protect a page I publish to the web? We're on Team.",
        context=(
            "kb/sharing/permissions-and-guests.md#public-links",
            "kb/sharing/permissions-and-guests.md#access-levels",
        ),
        v1="Yes, when you publish to the web you can set a password on any plan.",
        v2=(
            "On Team you can publish a page to the web and set an **expiry date** on the link, but password "
            "protection needs Business or Enterprise. Anyone with the link can view the page without an account. "
            "Also note that published pages are indexed by search engines unless you turn off **Allow search "
            "indexing**."
        ),
        expected_facts=(
            "Password-protected public links need Business or Enterprise.",
            "Team can set an expiry date on public links.",
            "Published pages are not indexed unless Allow search indexing is turned on.",
        ),
        # Subtle: the context says pages are NOT indexed unless indexing is turned on.
        intended_issue=("incorrect", "incorrect"),
    ),
    Case(
        key="sub-page-permissions",
        topic="sharing",
        channel="email",
        request=(
            "I shared a parent page with the Sales group as 'Can view', but on one sub-page they can edit. Why, "
            "and how do I fix it?"
        ),
        context=(
            "kb/sharing/permissions-and-guests.md#access-levels",
            "kb/sharing/permissions-and-guests.md#guests",
        ),
        v1="Sub-pages always have the same permissions as their parent, so this is a display bug. Try refreshing.",
        v2=(
            "Sub-pages inherit the parent's permissions unless someone changed them on the sub-page itself, so "
            "that sub-page most likely has its own sharing settings. Its Share menu will show a **yellow dot**. "
            "Open the sub-page's Share menu and click **Restore inherited access** to make it follow the parent "
            "again (Sales will then have *Can view*)."
        ),
        expected_facts=(
            "Sub-pages inherit unless changed on the sub-page; a yellow dot marks a page that no longer inherits.",
            "Restore inherited access undoes the change.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    # --- exports and imports ----------------------------------------------------------------
    Case(
        key="workspace-export-pdf",
        topic="exports",
        channel="chat",
        request=chat("I want a backup of our whole workspace as PDF. How do I do that?"),
        context=(
            "kb/exports/exporting-content.md#exporting-the-whole-workspace",
            "kb/exports/exporting-content.md#exporting-a-page",
            "kb/exports/importing-content.md#supported-sources",
        ),
        v1="Go to Settings → Workspace → Export and choose PDF. You'll get a download link by email.",
        v2=(
            "Whole-workspace exports come as **Markdown or HTML** (a ZIP file); PDF isn't available for the whole "
            "workspace. An owner or admin starts it in **Settings → Workspace → Export**. Large exports run in the "
            "background and Lumen emails a download link that works for 7 days.\n\n"
            "If you need PDFs, export individual pages (or a page with *Include sub-pages*) as PDF from "
            "⋯ → Export."
        ),
        expected_facts=(
            "Whole-workspace exports are Markdown or HTML only, not PDF.",
            "Owners and admins start them in Settings → Workspace → Export; the link works for 7 days.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="markdown-export-comments",
        topic="exports",
        channel="widget",
        request="Do Markdown exports include comments and the page history?",
        context=(
            "kb/exports/exporting-content.md#exporting-a-page",
            "kb/data/retention-and-deletion.md#page-history",
        ),
        v1="Comments are only in HTML exports, and exports don't include history.",
        v2=(
            "No to both. Comments are included only in **HTML** exports, and every export contains just the "
            "current version of each page, not its history. Attachments *are* included in Markdown exports."
        ),
        expected_facts=("Comments are included only in HTML exports.", "Exports contain only the current version."),
        intended_issue=("none", "none"),
    ),
    Case(
        key="notion-import-large",
        topic="exports",
        channel="chat",
        request=chat(
            "We're moving from Notion. Our export zip is 1.2 GB.",
            "Great, Lumen can import Notion exports. What would you like to know?",
            "Will it import in one go, and what happens to our Notion databases?",
        ),
        context=(
            "kb/exports/importing-content.md#supported-sources",
            "kb/exports/importing-content.md#what-is-kept",
            "kb/exports/importing-content.md#troubleshooting-imports",
        ),
        v1=(
            "Yes, just upload the 1.2 GB ZIP in Settings → Workspace → Imports. Notion databases are imported as "
            "fully working Lumen databases, including relations and rollups."
        ),
        v2=(
            "Not in one go: each import file can be at most **500 MB**, so split the Notion export (Markdown & "
            "CSV) into parts under that size.\n\n"
            "Notion databases become Lumen **tables**; relations and rollups come across as plain text. Page "
            "hierarchy, headings, tables, code blocks, images and attachments are kept, but comments and page "
            "history are not imported."
        ),
        expected_facts=(
            "Each import file can be at most 500 MB.",
            "Notion databases become tables; relations and rollups become plain text.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    # --- API --------------------------------------------------------------------------------
    Case(
        key="api-rate-limits-backoff",
        topic="api",
        channel="chat",
        request=chat("What are the API rate limits per plan, and how should my script handle hitting them?"),
        context=(
            "kb/api/rate-limits.md#limits-per-plan",
            "kb/api/rate-limits.md#handling-429-responses",
            "kb/api/authentication.md#making-a-request",
        ),
        v1=(
            "The Lumen API allows 1,000 requests per minute on all plans. If you hit the limit, wait a minute "
            "and try again."
        ),
        v2=(
            "Limits are counted per token, per minute:\n\n"
            "| Plan | Requests per minute |\n"
            "|---|---:|\n"
            "| Free | 30 |\n"
            "| Team | 100 |\n"
            "| Business | 300 |\n"
            "| Enterprise | 1,000 |\n\n"
            "`POST /v1/search` has its own limit of 20 requests per minute on every plan.\n\n"
            "Over the limit, the API answers **429 Too Many Requests** with a `Retry-After` header (seconds). "
            "Wait that long before retrying; retrying straight away still counts against the limit:\n\n"
            "```python\n"
            "import time\n"
            "\n"
            "import requests\n"
            "\n"
            'HEADERS = {"Authorization": f"Bearer {TOKEN}", "Lumen-Version": "2025-06-01"}\n'
            "\n"
            "\n"
            "def get(url):\n"
            "    while True:\n"
            "        r = requests.get(url, headers=HEADERS, timeout=30)\n"
            "        if r.status_code != 429:\n"
            "            r.raise_for_status()\n"
            "            return r.json()\n"
            '        time.sleep(int(r.headers.get("Retry-After", "1")))\n'
            "```\n\n"
            "You can also watch `X-RateLimit-Remaining` and `X-RateLimit-Reset` on every response to slow down "
            "before you hit the limit."
        ),
        expected_facts=(
            "Per-token limits: Free 30, Team 100, Business 300, Enterprise 1,000 requests per minute.",
            "Search has its own limit of 20 requests per minute.",
            "On 429, wait for Retry-After seconds before retrying.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="api-pagination-3000-pages",
        topic="api",
        channel="email",
        request="The pages endpoint only returns 25 results. How do I get all 3,000 of our pages?",
        context=(
            "kb/api/rate-limits.md#pagination",
            "kb/api/rate-limits.md#limits-per-plan",
        ),
        v1="Set `page_size=5000` to get all your pages in one request.",
        v2=(
            "Lists return 25 results by default. Pass `page_size=100` (the maximum) and keep following "
            "`next_cursor` until it is `null`: 3,000 pages is 30 requests. Cursors stay valid for 7 days, so a "
            "long sync can resume later where it stopped."
        ),
        expected_facts=(
            "page_size goes up to 100; follow next_cursor until it is null.",
            "Cursors expire after 24 hours.",
        ),
        # Subtle: the context says cursors expire after 24 hours.
        intended_issue=("incorrect", "incorrect"),
    ),
    Case(
        key="api-token-for-team-script",
        topic="api",
        channel="chat",
        request=(
            "I wrote an internal script that uses my personal API token. What should we use so it doesn't break "
            "when I leave the company?"
        ),
        context=(
            "kb/api/authentication.md#api-tokens",
            "kb/api/authentication.md#oauth-apps",
        ),
        v1=(
            "Personal tokens never expire, so your script will keep working after you leave. If colleagues need "
            "to run it, just paste your token into a shared Lumen page or a Slack channel so everyone has it."
        ),
        v2=(
            "Use a **workspace integration token**: owners and admins create one in Settings → Integrations → "
            "Internal integrations. It acts as a bot user instead of as you, so it keeps working after your "
            "account is gone. It only sees pages shared with the integration, so share the pages the script "
            "needs with it. Tokens expire after one year by default, so plan to rotate it."
        ),
        expected_facts=(
            "Workspace integration tokens act as a bot user and see only pages shared with the integration.",
            "Tokens expire after one year by default.",
        ),
        intended_issue=("unsafe", "none"),
    ),
    Case(
        key="api-missing-version-header",
        topic="api",
        channel="widget",
        request=(
            "The API returns different field names than your docs show. My call is "
            "`curl https://api.lumen.example/v1/pages/abc -H 'Authorization: Bearer lum_...'`"
        ),
        context=(
            "kb/api/authentication.md#making-a-request",
            "kb/api/authentication.md#api-tokens",
            "kb/api/rate-limits.md#pagination",
        ),
        v1=(
            "The field names differ because you're using a personal token. Workspace integration tokens get the "
            "documented fields; create one in Settings → Integrations."
        ),
        v2=(
            "You're not sending the `Lumen-Version` header, so the API falls back to the oldest supported "
            "version, whose field names differ from the current docs. Add it to every request:\n\n"
            "```bash\n"
            "curl https://api.lumen.example/v1/pages/abc \\\n"
            '  -H "Authorization: Bearer $LUMEN_TOKEN" \\\n'
            '  -H "Lumen-Version: 2025-06-01"\n'
            "```"
        ),
        expected_facts=("Without the Lumen-Version header the API uses the oldest supported version.",),
        intended_issue=("ungrounded", "none"),
    ),
    # --- offline ----------------------------------------------------------------------------
    Case(
        key="offline-in-browser",
        topic="offline",
        channel="widget",
        request="Does offline mode work in Chrome? I'm on a long flight next week.",
        context=(
            "kb/offline/offline-mode.md#where-offline-mode-works",
            "kb/offline/offline-mode.md#what-is-available-offline",
        ),
        v1="No, offline mode only works in the desktop and mobile apps.",
        v2=(
            "Not in a browser: offline mode works only in the desktop apps (macOS, Windows, Linux) and the mobile "
            "apps. Before your flight, install the desktop app and mark the pages you need with ⋯ → **Available "
            "offline**; pages you opened in the last 30 days are kept automatically. Attachments over 50 MB "
            "won't be available offline."
        ),
        expected_facts=(
            "Offline mode works only in the desktop and mobile apps, not in a browser.",
            "Pages opened in the last 30 days and pages marked Available offline are kept.",
        ),
        intended_issue=("incomplete", "none"),
    ),
    Case(
        key="offline-edit-conflict",
        topic="offline",
        channel="chat",
        request=chat(
            "I edited a page on the plane and my colleague edited the same paragraph at the same time. "
            "Whose version wins?"
        ),
        context=(
            "kb/offline/offline-mode.md#editing-offline-and-sync",
            "kb/data/retention-and-deletion.md#page-history",
        ),
        v1=(
            "The most recent edit always wins and the other version is discarded. You can get the discarded text "
            "back from page history."
        ),
        v2=(
            "Neither is thrown away. When you reconnect, Lumen keeps both versions of the block and shows a "
            "**Conflict** banner on the page, so you can choose which one to keep."
        ),
        expected_facts=("Lumen keeps both versions and shows a Conflict banner to choose one.",),
        intended_issue=("ungrounded", "none"),
    ),
    Case(
        key="offline-space-free-plan",
        topic="offline",
        channel="email",
        request="Can I make a whole space available offline on the Free plan?",
        context=(
            "kb/offline/offline-mode.md#what-is-available-offline",
            "kb/billing/plans.md#plan-comparison",
        ),
        v1="Yes, on any plan: open the space menu and choose Available offline.",
        v2=(
            "Not on Free: making a whole space available offline needs Team or above. On Free you can still mark "
            "individual pages (with their sub-pages) **Available offline**, and the pages you opened in the last "
            "30 days are kept on the device."
        ),
        expected_facts=("Making a whole space available offline needs Team or above.",),
        intended_issue=("incorrect", "none"),
    ),
    # --- data retention and security --------------------------------------------------------
    Case(
        key="restore-page-deleted-6-weeks",
        topic="data",
        channel="chat",
        request=chat("Someone deleted an important page 6 weeks ago. Can we get it back? We're on Team."),
        context=(
            "kb/data/retention-and-deletion.md#trash",
            "kb/data/retention-and-deletion.md#page-history",
        ),
        v1="Yes, deleted pages stay in the Trash for 90 days on Team, so you can still restore it from the Trash.",
        v2=(
            "Unfortunately not. Deleted pages can be restored from the Trash for 30 days on every plan, and after "
            "that they're deleted permanently; 6 weeks is past that window. Page history can't help either: it "
            "is deleted together with the page."
        ),
        expected_facts=(
            "The Trash keeps deleted pages for 30 days on every plan.",
            "Page history is deleted with the page.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="workspace-deletion-backups",
        topic="data",
        channel="email",
        request=(
            "We deleted our workspace yesterday. For our GDPR records: when is our data actually gone, "
            "including backups?"
        ),
        context=(
            "kb/data/retention-and-deletion.md#deleting-a-workspace",
            "kb/security/security-and-data-residency.md#encryption-and-backups",
            "kb/security/security-and-data-residency.md#gdpr-and-the-dpa",
        ),
        v1="Your data was deleted immediately when you deleted the workspace, including all backups.",
        v2=(
            "For 14 days after deletion, the workspace can still be restored by contacting support. After that, "
            "all of its data is deleted from Lumen's production systems within 30 days and from backups within "
            "90 days; backups are encrypted with AES-256 until then. For your records, the Data Processing "
            "Addendum (with the EU Standard Contractual Clauses) is in Settings → Legal."
        ),
        expected_facts=(
            "A deleted workspace can be restored for 14 days.",
            "Data is then deleted from production within 30 days and from backups within 90 days.",
        ),
        intended_issue=("incorrect", "none"),
    ),
    Case(
        key="eu-hosting-business",
        topic="security",
        channel="chat",
        request=chat(
            "Where is our data stored?",
            "Lumen workspaces are hosted in the United States (Oregon) by default.",
            "Can we move our workspace to the EU? We're on Business.",
        ),
        context=(
            "kb/security/security-and-data-residency.md#data-residency",
            "kb/billing/plans.md#plan-comparison",
            "kb/security/security-and-data-residency.md#gdpr-and-the-dpa",
        ),
        v1="Yes! All Business workspaces can be moved to Frankfurt, Germany, from Settings → Workspace → Region.",
        v2="EU hosting is only available on Enterprise, so you'd need to upgrade.",
        expected_facts=(
            "EU data residency (Frankfurt) is an Enterprise feature, not available on Business.",
            "Migrating an existing workspace needs a read-only maintenance window of up to 4 hours.",
        ),
        intended_issue=("incorrect", "incomplete"),
    ),
    # --- integrations -----------------------------------------------------------------------
    Case(
        key="slack-preview-title-only",
        topic="integrations",
        channel="slack",
        request="Lumen links in Slack only show the page title, not a preview of the content. Why?",
        context=(
            "kb/integrations/slack.md#what-the-slack-app-does",
            "kb/integrations/slack.md#troubleshooting-slack",
            "kb/sharing/permissions-and-guests.md#public-links",
        ),
        v1=("Link previews only work for public pages. Publish the page to the web to get a full preview in Slack."),
        v2=(
            "For private pages, Slack previews show only the title unless the person who posted the link has "
            "connected their Lumen account. Connect it (or reconnect it, if previews used to work) in "
            "**Settings → Account → Connected apps**, and previews will show the title and the first lines."
        ),
        expected_facts=(
            "Private page previews show only the title unless the poster connected their Lumen account.",
            "Reconnect in Settings → Account → Connected apps.",
        ),
        intended_issue=("ungrounded", "none"),
    ),
    Case(
        key="webhook-endpoint-outage",
        topic="integrations",
        channel="email",
        request="Our webhook endpoint was down for 2 hours this morning. Did we lose the events from that time?",
        context=(
            "kb/integrations/webhooks-and-integrations.md#retries-and-delivery-logs",
            "kb/integrations/webhooks-and-integrations.md#webhooks",
        ),
        v1=(
            "No events are lost: Lumen queues webhook deliveries for up to 30 days and replays them "
            "automatically when your endpoint comes back."
        ),
        v2=(
            "Probably some, yes. A failed delivery is retried up to 5 times with exponential backoff over about "
            "1 hour, and dropped after the last retry, so events from early in a 2-hour outage ran out of "
            "retries. The delivery log on the webhook's page (last 7 days) shows which ones failed. Your webhook "
            "is still on: it's switched off automatically only after failing for 3 days in a row."
        ),
        expected_facts=(
            "Failed deliveries are retried up to 5 times over about 1 hour, then dropped.",
            "The delivery log covers the last 7 days.",
        ),
        intended_issue=("ungrounded", "none"),
    ),
    Case(
        key="slack-create-page",
        topic="integrations",
        channel="chat",
        request=chat("How can I create a Lumen page straight from Slack?"),
        context=(
            "kb/integrations/slack.md#what-the-slack-app-does",
            "kb/integrations/slack.md#installing-the-slack-app",
        ),
        v1="You can do that with the Lumen app for Slack.",
        v2=(
            "Type `/lumen new <title>` in Slack: it creates a page in your default space. A workspace owner or "
            "admin has to install the Lumen Slack app first, from Settings → Integrations → Slack."
        ),
        expected_facts=(
            "/lumen new <title> creates a page in the default space.",
            "An owner or admin installs the Slack app first.",
        ),
        intended_issue=("incomplete", "none"),
    ),
)


def _stable_int(text: str, lo: int, hi: int) -> int:
    """A number in [lo, hi] derived from ``text``: the same on every run and every machine."""
    digest = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    return lo + digest % (hi - lo + 1)


def _tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 1.3))


def item_row(case: Case, version: str) -> dict[str, Any]:
    """One case answered by one model version, in the shape ``items_ingest`` takes."""
    external_id = f"demo-{case.key}-v{version}"
    context = [chunk_get(ref).as_context() for ref in case.context]
    prompt = " ".join([SYSTEM_PROMPT, *(c["content"] for c in context), str(case.request)])
    response = case.response(version)
    latency = _stable_int(external_id, 700, 1900) if version == "1" else _stable_int(external_id, 1100, 3200)
    return {
        "external_id": external_id,
        "request": case.request_value(),
        "response": response,
        "retrieved_context": context,
        "model_name": MODEL_NAME,
        "model_version": version,
        "trace_id": "tr-" + hashlib.sha256(external_id.encode()).hexdigest()[:32],
        "source": SOURCE,
        "metadata": {
            "case": case.key,
            "channel": case.channel,
            "topic": case.topic,
            "latency_ms": latency,
            "prompt_tokens": _tokens(prompt),
            "completion_tokens": _tokens(response),
            "retriever": "bm25",
            "top_k": len(context),
        },
    }


def items_build() -> list[dict[str, Any]]:
    """Every case answered by every model version: ``len(CASES) * 2`` rows."""
    return [item_row(case, version) for case in CASES for version in MODEL_VERSIONS]
