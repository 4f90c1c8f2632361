"""A project folder as `imgclf review` sees it, made by hand: data/, and the audit's and
the export's findings about it (the tests of the review page share it)."""

from __future__ import annotations

from pathlib import Path

from support.images import write_class_folders

CLASSES = ["circle", "square", "star"]
HEADERS = {
    "audit/label_issues.csv": "split,file,given,suggested,suggested_probability,quality",
    "audit/near_duplicates.csv": "split,file,duplicate_split,duplicate_file,label,"
    "duplicate_label,distance,leak",
    "audit/outliers.csv": "split,file,label,score",
    "evaluation/review_mistakes.csv": "split,file,given,predicted,confidence",
}
FINDINGS = {
    "audit/label_issues.csv": [
        "train,circle/000.png,circle,square,0.9700,0.0100",
        "val,star/001.png,star,circle,0.8100,0.0500",
        "train,square/002.png,square,star,0.6000,0.2000",
    ],
    "audit/near_duplicates.csv": [
        "train,square/003.png,val,square/004.png,square,square,0.0500,True",
        "train,star/005.png,test,star/006.png,star,star,0.0200,True",
        "test,circle/006.png,test,circle/007.png,circle,circle,0.0100,False",  # never listed
    ],
    "audit/outliers.csv": ["train,circle/005.png,circle,0.1500", "test,square/007.png,square,0.1"],
    "evaluation/review_mistakes.csv": [
        "train,square/001.png,square,circle,0.9900",
        "test,star/007.png,star,square,0.9800",  # never listed
    ],
}


def write_findings(root: Path, findings: dict[str, list[str]]) -> None:
    for name, rows in findings.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([HEADERS[name], *rows]) + "\n")


def review_project(root: Path) -> Path:
    """data/ of three classes of eight images, and findings about seven of them."""
    write_class_folders(root / "data", CLASSES, per_class=8)
    write_findings(root, FINDINGS)
    return root


def review_client(root: Path):
    """Flask's test client of the review app for the project at `root`, sending its key."""
    from imgclf.review.app import KEY_HEADER, create_review_app

    app = create_review_app(root)
    client = app.test_client()
    client.environ_base[f"HTTP_{KEY_HEADER.upper().replace('-', '_')}"] = app.config["REVIEW_KEY"]
    return client
