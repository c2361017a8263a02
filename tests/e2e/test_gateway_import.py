"""The administrator's CSV import through the web gateway in front of the real services: the form on /admin/import
(pasted or uploaded), the members service importing in the background, the progress page refreshing itself until
done, and the members there afterwards; a member who is no administrator does not reach the page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.parse

import pytest

from .conftest import Web
from .test_gateway import csrf_of, person, sign_in, wait_for

pytestmark = pytest.mark.e2e

HEADER = "navn;e-mail;organisation;organisationstype;stilling;grupper"


def test_an_administrator_imports_members_from_a_pasted_file(web: Web):
    p = web.platform
    status, group = p.call(
        "members", "POST", "/groups", {"name": "Importgruppe øst", "slug": "importgruppe-oest", "region": "Øst"}
    )
    assert status == 201, group
    for body in (
        person("Lars Prøvesen", "lars.proevesen@example.org", "Eksempel IT A/S", "supplier"),
        person("Mette Eksempel", "mette.eksempel@example.org", "Eksempel Kommune"),
    ):
        status, member = p.call("members", "POST", "/members", body)
        assert status == 201, member
    made = subprocess.run(
        [sys.executable, "-m", "gateway.entrypoints.cli", "add-admin", "lars.proevesen@example.org"],
        env={**os.environ, **web.process.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0 and "is now an administrator" in made.stdout, made.stdout + made.stderr

    member = sign_in(web, "mette.eksempel@example.org")
    assert member.get("/admin/import").status_code == 403
    assert member.get("/admin").status_code == 403

    admin = sign_in(web, "lars.proevesen@example.org")
    assert 'href="/admin/import"' in admin.get("/admin").text
    form = admin.get("/admin/import")
    assert form.status_code == 200 and 'name="csv"' in form.text and "64 KiB" in form.text
    text = "\r\n".join(
        [
            HEADER,
            "Åse Importsen;aase.importsen@example.org;Prøve Region;offentlig;Kontorchef;importgruppe-oest",
            "Jens Fiktivsen;jens.fiktivsen@example.org;Eksempel Data ApS;leverandør;Udvikler;importgruppe-oest",
            "",
        ]
    )
    # as a browser sends the form: multipart, with the file input left empty
    sent = admin.post(
        "/admin/import",
        data={"csv": text, "csrf": csrf_of(form.text)},
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert sent.status_code == 200, sent.text[:500]
    assert re.fullmatch(r"/admin/import/[0-9a-f-]{36}", urllib.parse.urlparse(str(sent.url)).path), sent.url
    if "Importen er i gang" in sent.text:  # it reloads itself only when asked to (WCAG 2.2.1)
        assert 'http-equiv="refresh"' not in sent.text and "?follow=1" in sent.text
        assert '<meta http-equiv="refresh" content="2">' in admin.get(str(sent.url) + "?follow=1").text
    done = wait_for(
        lambda: (lambda r: r if "Importen er færdig" in r.text else None)(admin.get(sent.url)), what="the import done"
    )
    assert 'http-equiv="refresh"' not in done.text
    counts = dict(re.findall(r"<dt>([^<]+)</dt><dd>(\d+)</dd>", done.text))
    assert counts["Nye medlemmer"] == "2" and counts["Afviste linjer"] == "0", counts

    for address in ("aase.importsen@example.org", "jens.fiktivsen@example.org"):
        status, found = p.call("members", "GET", "/admin/members?q=" + urllib.parse.quote(address))
        assert status == 200 and [m["email"] for m in found["items"]] == [address], found
    status, seated = p.call("members", "GET", f"/groups/{group['group_id']}")
    assert status == 200 and len(seated["members"]) == 2, seated

    # the same file again, uploaded this time: nothing new
    form = admin.get("/admin/import")
    again = admin.post(
        "/admin/import",
        data={"csv": "", "csrf": csrf_of(form.text)},
        files={"file": ("medlemmer.csv", ("\ufeff" + text).encode(), "text/csv")},
    )
    assert again.status_code == 200 and "/admin/import/" in str(again.url), again.text[:500]
    done = wait_for(
        lambda: (lambda r: r if "Importen er færdig" in r.text else None)(admin.get(again.url)), what="done again"
    )
    counts = dict(re.findall(r"<dt>([^<]+)</dt><dd>(\d+)</dd>", done.text))
    assert counts["Nye medlemmer"] == "0" and counts["Allerede registreret (uændret)"] == "2", counts


def test_a_refused_file_comes_back_on_the_form_with_the_text_kept(web: Web):
    p = web.platform
    status, member = p.call("members", "POST", "/members", person("Lars Prøvesen", "lars.proevesen@example.org", "X"))
    assert status == 201, member
    made = subprocess.run(
        [sys.executable, "-m", "gateway.entrypoints.cli", "add-admin", "lars.proevesen@example.org"],
        env={**os.environ, **web.process.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    admin = sign_in(web, "lars.proevesen@example.org")
    form = admin.get("/admin/import")
    text = HEADER + "\nMette\x01Eksempel;mette@example.org;Eksempel Kommune;offentlig;Chef;\n"
    refused = admin.post("/admin/import", data={"csv": text, "csrf": csrf_of(form.text)})
    assert refused.status_code == 422, refused.text[:500]
    assert "Control characters are not allowed" in refused.text and 'aria-invalid="true"' in refused.text
    assert "mette@example.org" in refused.text  # the pasted text is kept in the textarea
