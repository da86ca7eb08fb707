"""Team pages: the switcher, members and API tokens. Each view parses, authorizes, calls one
service or selector and renders; PulseErrors become form errors or a dashboard message."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pulse_site.errors import PulseError
from pulse_site.live.services import SIGNED_OUT, TEAM_SWITCHED, session_group, sockets_close_on_commit
from pulse_site.teams import selectors, services
from pulse_site.teams.decorators import get_or_404, manager_required, team_required
from pulse_site.teams.forms import (
    MemberAddForm,
    MemberRoleForm,
    PasswordChangeForm,
    RetentionForm,
    TeamSettingsForm,
    TeamSwitchForm,
    TokenCreateForm,
    add_service_error,
)
from pulse_site.teams.middleware import SESSION_TEAM_KEY

# The new token's secret waits here for exactly one render of the team page, so a reload (or
# the back button) can never show it again and a POST is never re-submitted to see it.
SESSION_NEW_TOKEN_KEY = "pulse_new_token"


@require_POST
@login_required
def switch(request: HttpRequest) -> HttpResponse:
    form = TeamSwitchForm(request.POST)
    team_id = form.cleaned_data["team"] if form.is_valid() else ""
    membership = get_or_404(selectors.membership_get_for_user, user=request.user, team_public_id=team_id)
    if request.session.get(SESSION_TEAM_KEY) != membership.team.public_id:
        request.session[SESSION_TEAM_KEY] = membership.team.public_id
        # The session's other tabs show the team it had: their sockets are closed with this reason,
        # and live.js loads them again (their redraws would fetch the new team's parts into them).
        # Saved first: a tab loaded again before the middleware saved it would get the old team.
        request.session.save()
        if request.session.session_key:
            sockets_close_on_commit(session_group(request.session.session_key), reason=TEAM_SWITCHED)
    return redirect("overview")


class LogoutView(auth_views.LogoutView):
    """Django's, closing the session's sockets (its other tabs) at once: they went on receiving the
    team's events until the next catch-up round found the session gone."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = request.session.session_key
        response = super().post(request, *args, **kwargs)
        if key:
            sockets_close_on_commit(session_group(key), reason=SIGNED_OUT)
        return response


def _render_team(request: HttpRequest, *, status: int = 200, **forms_: forms.Form) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    membership = request.membership  # type: ignore[attr-defined]
    context: dict[str, Any] = {
        "members": selectors.members_for_team(team),
        "role_choices": MemberRoleForm.base_fields["role"].choices,  # type: ignore[attr-defined]
        "member_form": forms_.get("member_form") or MemberAddForm(),
        "token_form": forms_.get("token_form") or TokenCreateForm(),
        "retention_form": forms_.get("retention_form") or RetentionForm(team=team),
        "settings_form": forms_.get("settings_form") or TeamSettingsForm(team=team),
    }
    if selectors.manages_in_person(membership=membership):
        context["tokens"] = tokens = list(selectors.tokens_for_team(team))
        # The tokens offered "Revoke": those token_revoke would revoke.
        context["revocable"] = {t.public_id for t in tokens if services.token_revoke_refusal(t) is None}
        context["token_create_refusal"] = services.team_work_refusal(team)
        context["new_token"] = request.session.pop(SESSION_NEW_TOKEN_KEY, None)
    response = render(request, "teams/detail.html", context, status=status)
    if context.get("new_token"):
        add_never_cache_headers(response)
    return response


@require_GET
@team_required
def detail(request: HttpRequest) -> HttpResponse:
    return _render_team(request)


def _refuse(request: HttpRequest, error: PulseError) -> HttpResponse:
    messages.error(request, error.message)
    return redirect("teams:detail")


@require_POST
@manager_required
def member_add(request: HttpRequest) -> HttpResponse:
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return _render_team(request, member_form=form, status=400)
    try:
        membership = services.membership_add_by_username(
            team=request.team, by=request.membership, **form.cleaned_data  # type: ignore[attr-defined]
        )
    except PulseError as exc:
        if add_service_error(form, exc):
            return _render_team(request, member_form=form, status=400)
        return _refuse(request, exc)
    messages.success(request, f"{membership.user.get_username()} joined as {membership.get_role_display().lower()}.")
    return redirect("teams:detail")


@require_POST
@manager_required
def member_role(request: HttpRequest, user_id: int) -> HttpResponse:
    target = get_or_404(selectors.membership_get_for_team, team=request.team, user_id=user_id)  # type: ignore[attr-defined]
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
        return redirect("teams:detail")
    try:
        services.membership_set_role(membership=target, role=form.cleaned_data["role"], by=request.membership)  # type: ignore[attr-defined]
    except PulseError as exc:
        return _refuse(request, exc)
    messages.success(request, f"{target.user.get_username()} is now {target.get_role_display().lower()}.")
    return redirect("teams:detail")


@require_POST
@manager_required
def member_remove(request: HttpRequest, user_id: int) -> HttpResponse:
    target = get_or_404(selectors.membership_get_for_team, team=request.team, user_id=user_id)  # type: ignore[attr-defined]
    try:
        services.membership_remove(membership=target, by=request.membership)  # type: ignore[attr-defined]
    except PulseError as exc:
        return _refuse(request, exc)
    messages.success(request, f"{target.user.get_username()} was removed from {target.team.name}.")
    # Someone who removed themselves can no longer see this team's page.
    return redirect("overview" if target.user_id == request.user.pk else "teams:detail")


@require_POST
@manager_required
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _render_team(request, token_form=form, status=400)
    team = request.team  # type: ignore[attr-defined]
    try:
        token, secret = services.token_create(
            team=team,
            name=form.cleaned_data["name"],
            access=form.cleaned_data["access"],
            expires_at=form.expires_at(team),
            by=request.membership,  # type: ignore[attr-defined]
        )
    except PulseError as exc:
        if add_service_error(form, exc):
            return _render_team(request, token_form=form, status=400)
        return _refuse(request, exc)
    request.session[SESSION_NEW_TOKEN_KEY] = {"id": token.public_id, "name": token.name, "secret": secret}
    return redirect("teams:detail")


@require_POST
@manager_required
def token_revoke(request: HttpRequest, token_id: str) -> HttpResponse:
    token = get_or_404(selectors.token_get_for_team, team=request.team, token_id=token_id)  # type: ignore[attr-defined]
    try:
        services.token_revoke(token=token, by=request.membership)  # type: ignore[attr-defined]
    except PulseError as exc:
        return _refuse(request, exc)
    messages.success(request, f"The token “{token.name}” was revoked; it stops working at once.")
    return redirect("teams:detail")


def _update_team(request: HttpRequest, form: forms.Form, form_name: str, saved: str) -> HttpResponse:
    """One of the team page's settings forms through team_update; what else it did (a new zone that
    moves the budget's windows) is told as the budget page tells it (team_update_noted)."""
    from budgets.services import team_update_noted  # budgets depends on teams, not the other way

    if not form.is_valid():
        return _render_team(request, status=400, **{form_name: form})
    try:
        _, notes = team_update_noted(team=request.team, changes=form.cleaned_data, by=request.membership)  # type: ignore[attr-defined]
    except PulseError as exc:
        if add_service_error(form, exc):
            return _render_team(request, status=400, **{form_name: form})
        return _refuse(request, exc)
    messages.success(request, saved)
    for note in notes:
        messages.warning(request, note)
    return redirect("teams:detail")


@require_POST
@manager_required
def settings_update(request: HttpRequest) -> HttpResponse:
    return _update_team(request, TeamSettingsForm(request.POST), "settings_form", "Team settings saved.")


@require_POST
@manager_required
def retention_update(request: HttpRequest) -> HttpResponse:
    return _update_team(request, RetentionForm(request.POST), "retention_form",
                        "Retention saved; the next prune (within a minute) follows it.")


@require_http_methods(["GET", "POST"])
@login_required
def password_change(request: HttpRequest) -> HttpResponse:
    """Change one's own password; every other session and open socket of the user ends."""
    form = PasswordChangeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_password_change(user=selectors.signed_in_user(request), old_password=form.cleaned_data["old_password"],
                                          new_password=form.cleaned_data["new_password"])
        except PulseError as exc:
            add_service_error(form, exc)
        else:
            # Keeps this session (with a new key) while the others fail their hash check.
            update_session_auth_hash(request, request.user)  # type: ignore[arg-type]
            messages.success(request, "Password changed. Your other sessions have been logged out.")
            return redirect("teams:password")
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/password_change.html", {"form": form}, status=status)
