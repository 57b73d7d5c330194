"""Public datasets a spec can name with `data.dataset`. Each entry fills the data section's unset
fields: where the files sit under the data root, their format, item side information, where the
canonical copy comes from and the sha256 of the interaction file's (decompressed) content.

Nothing is downloaded at run time: when a file is missing, the error names the URL and checksum
so the user can fetch it and point `data.path` (or the data root) at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KnownDataset:
    path: str
    format: str
    interactions: str
    url: str
    sha256: str
    items: dict | None = None
    notes: str = ""
    defaults: dict = field(default_factory=dict)


def _s3rec(folder: str, stem: str, sha: str, attributes: bool = True) -> KnownDataset:
    items = {"path": f"{stem}_item2attributes.json", "format": "attributes_json"} if attributes else None
    return KnownDataset(
        path=folder, format="user_sequence_lines", interactions=f"{stem}.txt",
        url=f"https://github.com/aHuiWang/CIKM2020-S3Rec/raw/master/data/{stem}.txt", sha256=sha, items=items,
        notes="S3-Rec 5-core version: one user per line, chronological, ids remapped 1..N",
    )


KNOWN_DATASETS: dict[str, KnownDataset] = {
    "ml-100k": KnownDataset(
        path="ml-100k",
        format="recbole",
        interactions="ml-100k.inter",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip "
        "(RecBole atomic copy: recbole 1.2.1 wheel)",
        sha256="4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
        items={"path": "ml-100k.item", "format": "recbole"},
        notes="RecBole atomic files with rating and timestamp; "
        "the GroupLens zip reads with format: movielens",
    ),
    "ml-1m": KnownDataset(
        path="ml-1m",
        format="user_item_lines",
        interactions="ml-1m.txt.xz",
        url="https://github.com/kang205/SASRec/raw/master/data/ml-1m.txt",
        sha256="b725f3acb3986fe3130bffd1e77a74d182a1f51799567a236dbd60270f95b0a2",
        items={"path": "movies.dat", "format": "movielens", "id_map": "sas_to_original_items.txt"},
        notes="SASRec version: 6,040 users, 3,416 items, chronological per user",
    ),
    "amazon-beauty": _s3rec(
        "amazon-beauty", "Beauty", "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"
    ),
    "amazon-sports": _s3rec(
        "amazon-sports",
        "Sports_and_Outdoors",
        "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
    ),
    "amazon-toys": _s3rec(
        "amazon-toys", "Toys_and_Games", "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f"
    ),
    "yelp": _s3rec("yelp", "Yelp", "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed"),
    "lastfm": _s3rec("lastfm", "LastFM", "9ded486adb5b0fe9dc761950afa0a9a05e93ff018992e0c52bf11afec529f802"),
}
