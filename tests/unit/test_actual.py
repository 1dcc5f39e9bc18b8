"""Actual state: one pure parse of the daemon's image list."""

from reconciler.actual import ObservedImages, observe
from reconciler.refs import ImageRef, parse

DIGEST = "sha256:" + "12" * 32
OTHER = "sha256:" + "34" * 32


def test_observe_maps_normalized_tags_to_image_ids():
    seen = observe(
        [
            {"Id": "sha256:a", "RepoTags": ["redis:7", "localhost/redis:7"], "RepoDigests": [], "Labels": {}},
            {"Id": "sha256:b", "RepoTags": ["quay.io/argoproj/argocd:v2"], "RepoDigests": [], "Labels": {}},
        ]
    )
    assert seen.tags == {
        parse("docker.io/library/redis:7"): "sha256:a",
        parse("localhost/redis:7"): "sha256:a",
        parse("quay.io/argoproj/argocd:v2"): "sha256:b",
    }
    assert seen.image_id(parse("index.docker.io/library/redis:7")) == "sha256:a"
    assert seen.image_id(parse("redis:8")) is None


def test_observe_keys_repo_digests_without_tag():
    seen = observe([{"Id": "sha256:a", "RepoTags": ["redis:7"], "RepoDigests": [f"redis@{DIGEST}"], "Labels": {}}])
    assert seen.digests == {ImageRef("docker.io", "library/redis", None, DIGEST): "sha256:a"}


def test_image_id_of_a_digest_reference_uses_only_the_digest():
    seen = observe([{"Id": "sha256:a", "RepoTags": ["redis:7"], "RepoDigests": [f"redis@{DIGEST}"], "Labels": {}}])
    assert seen.image_id(parse(f"redis@{DIGEST}")) == "sha256:a"
    assert seen.image_id(parse(f"redis:8@{DIGEST}")) == "sha256:a"  # the digest decides, not the tag
    assert seen.image_id(parse(f"redis@{OTHER}")) is None
    assert seen.image_id(parse(f"valkey@{DIGEST}")) is None


def test_image_id_of_a_tag_never_comes_from_a_digest():
    seen = observe([{"Id": "sha256:a", "RepoTags": [], "RepoDigests": [f"redis@{DIGEST}"], "Labels": {}}])
    assert seen.image_id(parse("redis:latest")) is None


def test_observe_keeps_labels_per_image():
    seen = observe(
        [
            {"Id": "sha256:a", "RepoTags": [], "RepoDigests": [], "Labels": {"org.reconcile.stack": "s"}},
            {"Id": "sha256:b", "RepoTags": [], "RepoDigests": [], "Labels": None},
            {"Id": "sha256:c"},
        ]
    )
    assert seen.labels == {"sha256:a": {"org.reconcile.stack": "s"}, "sha256:b": {}, "sha256:c": {}}


def test_observe_tolerates_missing_or_null_lists():
    seen = observe([{"Id": "sha256:a", "RepoTags": None, "RepoDigests": None, "Labels": None}, {"Id": "sha256:b"}])
    assert seen.tags == {} and seen.digests == {}


def test_observe_ignores_none_tags_and_digests():
    seen = observe([{"Id": "sha256:a", "RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"], "Labels": {}}])
    assert seen.tags == {} and seen.digests == {}
    assert "sha256:a" in seen.labels


def test_observe_ignores_names_it_cannot_parse():
    seen = observe(
        [{"Id": "sha256:a", "RepoTags": ["Bad Name:1", "redis:7"], "RepoDigests": ["redis@md5:x"], "Labels": {}}]
    )
    assert seen.tags == {parse("redis:7"): "sha256:a"}
    assert seen.digests == {}


def test_observe_ignores_repo_digests_without_digest():
    seen = observe([{"Id": "sha256:a", "RepoTags": [], "RepoDigests": ["redis:7"], "Labels": {}}])
    assert seen.digests == {}


def test_observe_does_not_add_latest_to_tags():
    seen = observe([{"Id": "sha256:a", "RepoTags": ["redis:latest"], "RepoDigests": [], "Labels": {}}])
    assert seen.image_id(parse("redis")) == "sha256:a"
    assert list(seen.tags) == [ImageRef("docker.io", "library/redis", "latest", None)]


def test_observe_empty_listing():
    assert observe([]) == ObservedImages()
