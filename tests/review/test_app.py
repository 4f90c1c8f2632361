"""imgclf.review.app through Flask's test client: findings, decisions, undo, images."""

from __future__ import annotations

import csv
import json

import pytest

from imgclf.review.app import create_review_app
from support.review import FINDINGS, review_client, review_project, write_findings


@pytest.fixture
def project(tmp_path):
    return review_project(tmp_path)


@pytest.fixture
def client(project):
    return review_client(project)


def decide(client, finding: str, *changes: dict, undo: bool = False):
    return client.post("/api/decide", json={"finding": finding, "changes": list(changes),
                                            "undo": undo})  # fmt: skip


def decisions_file(project) -> list[dict]:
    with open(project / "labels" / "decisions.csv", newline="") as table:
        return list(csv.DictReader(table))


def test_the_state_lists_every_finding_but_never_offers_a_test_image(client):
    state = client.get("/api/state").get_json()
    keys = [f["key"] for f in state["findings"]]
    assert keys == [
        "label_issue:circle/000.png", "label_issue:star/001.png", "label_issue:square/002.png",
        "near_duplicate:square/003.png|square/004.png", "near_duplicate:star/005.png|star/006.png",
        "outlier:circle/005.png", "mistake:square/001.png",
    ]  # fmt: skip
    files = {f["key"]: f["files"] for f in state["findings"]}
    assert files["near_duplicate:star/005.png|star/006.png"] == ["star/005.png"]  # not the test one
    assert state["classes"] == ["circle", "square", "star"] and state["problems"] == []
    assert state["decisions"] == {} and state["since"]["when"] is None


def test_a_decision_is_written_at_once_and_undone(client, project):
    answer = decide(client, "label_issue:circle/000.png",
                    {"file": "circle/000.png", "action": "relabel", "label": "square"})  # fmt: skip
    assert answer.status_code == 200
    assert answer.get_json()["decisions"]["circle/000.png"]["label"] == "square"
    (row,) = decisions_file(project)
    assert (row["file"], row["action"], row["label"], row["finding"]) == (
        "circle/000.png", "relabel", "square", "label_issue",
    )  # fmt: skip
    pair = "near_duplicate:square/003.png|square/004.png"
    assert decide(client, pair, {"file": "square/004.png", "action": "exclude"}).status_code == 200
    assert [r["file"] for r in decisions_file(project)] == ["circle/000.png", "square/004.png"]
    # A new app (a reload, a restart) reads them back.
    state = review_client(project).get("/api/state").get_json()
    assert set(state["decisions"]) == {"circle/000.png", "square/004.png"}
    assert decide(client, pair, {"file": "square/004.png"}, undo=True).status_code == 200
    assert [r["file"] for r in decisions_file(project)] == ["circle/000.png"]


@pytest.mark.parametrize(
    ("finding", "change", "message"),
    [
        ("label_issue:circle/000.png", {"file": "circle/000.png", "action": "relabel",
                                         "label": "hexagon"}, "not a class"),
        ("label_issue:circle/000.png", {"file": "circle/001.png", "action": "exclude"},
         "cannot be decided from finding"),
        ("near_duplicate:star/005.png|star/006.png", {"file": "star/006.png", "action": "exclude"},
         "cannot be decided from finding"),  # the test image of the pair
        ("label_issue:nowhere.png", {"file": "nowhere.png", "action": "keep"}, "no finding"),
        ("outlier:circle/005.png", {"file": "circle/005.png", "action": "delete"}, "action"),
    ],
    ids=["unknown-class", "another-file", "test-image", "unknown-finding", "unknown-action"],
)  # fmt: skip
def test_a_bad_decision_is_refused_and_nothing_written(client, project, finding, change, message):
    answer = decide(client, finding, change)
    assert answer.status_code == 400 and message in answer.get_json()["error"]
    assert not (project / "labels" / "decisions.csv").exists()


def test_a_malformed_request_gets_400(client):
    answer = client.post("/api/decide", data="not json", content_type="application/json")
    assert answer.status_code == 400 and "send JSON" in answer.get_json()["error"]


def test_images_are_served_only_for_findings(client):
    image = client.get("/image/circle/000.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data.startswith(b"\x89PNG")
    assert client.get("/image/star/006.png").status_code == 200  # shown beside its pair
    assert client.get("/image/circle/001.png").status_code == 404  # no finding about it
    assert client.get("/image/../params.yaml").status_code == 404


def test_after_a_rerun_the_page_says_what_changed_since_the_last_decision(client, project):
    decide(client, "label_issue:circle/000.png",
           {"file": "circle/000.png", "action": "relabel", "label": "square"})  # fmt: skip
    rerun = {**FINDINGS, "audit/label_issues.csv": [
        "val,star/001.png,star,circle,0.8100,0.0500",  # still there
        "train,circle/002.png,circle,star,0.7000,0.1000",  # new
    ]}  # fmt: skip
    write_findings(project, rerun)
    since = client.get("/api/state").get_json()["since"]
    assert since["new"] == ["label_issue:circle/002.png"]
    assert since["resolved"] == 2  # circle/000.png (relabelled) and square/002.png
    assert json.loads((project / "labels" / "last_review.json").read_text())["when"]


def test_without_an_audit_the_page_says_what_to_run(tmp_path):
    from support.images import write_class_folders

    write_class_folders(tmp_path / "data", ["a", "b"], per_class=2)
    state = review_client(tmp_path).get("/api/state").get_json()
    assert state["findings"] == [] and "dvc repro audit" in state["problems"][0]


# --- it answers only its own user ------------------------------------------------------


@pytest.mark.parametrize("host", ["attacker.example:5001", "attacker.example", "127.0.0.1:81",
                                  "localhost.attacker.example", "10.0.0.5"])  # fmt: skip
def test_a_request_naming_another_host_is_refused_even_with_the_key(client, project, host):
    # DNS rebinding: a page at attacker.example, its name pointed at 127.0.0.1, reads and
    # writes through the user's browser; the browser still sends the attacker's Host.
    headers = {"Host": host, "Origin": f"http://{host}"}
    assert client.get("/api/state", headers=headers).status_code == 403
    assert client.get("/image/circle/000.png", headers=headers).status_code == 403
    change = {"file": "circle/000.png", "action": "relabel", "label": "square"}
    answer = client.post("/api/decide", json={"finding": "label_issue:circle/000.png",
                                              "changes": [change]}, headers=headers)  # fmt: skip
    assert answer.status_code == 403 and "127.0.0.1" in answer.get_json()["error"]
    assert not (project / "labels" / "decisions.csv").exists()


def test_without_this_runs_key_nothing_is_answered(project):
    app = create_review_app(project)
    anonymous = app.test_client()
    for path in ("/", "/api/state", "/image/circle/000.png", "/static/review.js"):
        answer = anonymous.get(path)
        assert answer.status_code == 403 and "imgclf review" in answer.get_json()["error"], path
    assert anonymous.get("/api/state", headers={"X-Review-Key": "guess"}).status_code == 403
    assert anonymous.get("/api/state?key=" + "x" * 43).status_code == 403
    assert create_review_app(project).config["REVIEW_KEY"] != app.config["REVIEW_KEY"]


def test_the_printed_address_sets_a_strict_cookie_and_leaves_the_address_bar(project):
    app = create_review_app(project)
    browser = app.test_client()
    opened = browser.get(f"/?key={app.config['REVIEW_KEY']}")
    assert opened.status_code == 303 and opened.headers["Location"] == "/"
    cookie = opened.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # The page, its images and its API then work from the cookie alone.
    assert browser.get("/").status_code == 200
    assert browser.get("/api/state").get_json()["findings"]
    assert browser.get("/image/circle/000.png").mimetype == "image/png"


def test_no_page_may_frame_it_or_learn_its_address(client):
    for answer in (client.get("/"), client.get("/api/state"), client.get("/nope"),
                   client.get("/api/state", headers={"Host": "attacker.example"})):  # fmt: skip
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
        assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_a_findings_file_cannot_point_an_image_outside_data(client, project):
    (project / "outside.png").write_bytes((project / "data" / "circle" / "000.png").read_bytes())
    (project / "data" / "circle" / "link.png").symlink_to(project / "outside.png")
    write_findings(project, {**FINDINGS, "audit/outliers.csv": [
        "train,../outside.png,circle,0.9", "train,circle/link.png,circle,0.8",
    ]})  # fmt: skip
    listed = {f["file"] for f in client.get("/api/state").get_json()["findings"]}
    assert {"../outside.png", "circle/link.png"} <= listed  # listed, as the file says
    assert client.get("/image/..%2Foutside.png").status_code == 404
    assert client.get("/image/circle/link.png").status_code == 404  # resolves outside data/


def test_a_file_whose_name_starts_like_a_formula_is_shown_under_its_own_name(client, project):
    from imgclf.atomic_io import csv_table

    source = project / "data" / "circle" / "000.png"
    (project / "data" / "-x.png").write_bytes(source.read_bytes())
    with csv_table(project / "audit" / "outliers.csv", ["split", "file", "label", "score"]) as t:
        t.writerow({"split": "train", "file": "-x.png", "label": "circle", "score": 0.9})
    assert "train,'-x.png," in (project / "audit" / "outliers.csv").read_text()  # escaped
    listed = {f["file"] for f in client.get("/api/state").get_json()["findings"]}
    assert "-x.png" in listed and "'-x.png" not in listed
    assert client.get("/image/-x.png").status_code == 200


@pytest.mark.slow  # starts `imgclf review` as a user does
def test_imgclf_review_prints_an_address_with_its_key_on_a_free_port(project):
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    server = subprocess.Popen(
        [sys.executable, "-m", "imgclf", "review", "--no-browser", "--project", str(project)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stdout.readline()
        address = line.split()[1]
        assert address.startswith("http://127.0.0.1:") and "/?key=" in address
        base, key = address.split("/?key=")
        assert not base.endswith(":5001") and len(key) >= 40
        request = urllib.request.Request(f"{base}/api/state", headers={"X-Review-Key": key})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["findings"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/state", timeout=10)
        assert refused.value.code == 403
    finally:
        server.terminate()
        server.wait(10)
