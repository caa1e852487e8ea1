"""The instance quota (spec part 2 §7, issue 17 item 1): per account, at most
--instance-quota instances; a create that would cross it is refused whole with
413 Instance.InstanceQuotaExceedLimit and creates nothing."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .rawhttp import expect

UBUNTU = "m-Ubt2204a"
QUOTA = "Instance.InstanceQuotaExceedLimit"


def _create(client, count: int = 1, **kw) -> list[str]:
    return client.create_instance(cpu_count=1, memory_capacity_in_gb=1, image_id=UBUNTU,
                                  purchase_count=count, **kw).instance_ids


def _ids(client) -> set[str]:
    return {i.id for i in client.list_instances(max_keys=1000).instances}


def test_the_quota_is_all_or_nothing_per_account(fresh_server):
    srv = fresh_server("--instance-quota", "5", "--transition-seconds", "0", "--no-ssh")
    c = srv.client()
    first = _create(c, 3, client_token="three")
    # crossing the quota by 1: refused whole, nothing created
    err = expect(413, QUOTA, _create, c, 3)
    assert str(err) == "Instance number exceeds the limit."
    assert _ids(c) == set(first)
    filled = _create(c, 2)  # exactly up to the quota
    expect(413, QUOTA, _create, c)
    assert _ids(c) == set(first) | set(filled)
    # a retry of an answered create is its answer, not a new create
    assert _create(c, 3, client_token="three") == first
    # other accounts have their own quota
    other = srv.client(list(srv.credentials)[1])
    assert len(_create(other, 5)) == 5
    # releasing frees a slot
    c.release_instance(first[0])
    [again] = _create(c)
    expect(413, QUOTA, _create, c)
    assert _ids(c) == (set(first) - {first[0]}) | set(filled) | {again}


def test_concurrent_creates_never_cross_the_quota(fresh_server):
    srv = fresh_server("--instance-quota", "10", "--transition-seconds", "0", "--no-ssh")
    c = srv.client()

    def one(_):
        try:
            return len(_create(srv.client(), 3))
        except Exception as exc:  # noqa: BLE001 - counted below
            return exc

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    created = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if not isinstance(r, int)]
    assert sum(created) == 9 and len(refused) == 5, results
    assert all(getattr(getattr(e, "last_error", e), "code", None) == QUOTA for e in refused)
    assert len(_ids(c)) == 9


def test_the_default_quota_is_200(fresh_server):
    srv = fresh_server("--transition-seconds", "0", "--no-ssh")
    c = srv.client()
    _create(c, 100)
    _create(c, 99)
    expect(413, QUOTA, _create, c, 2)
    _create(c)
    expect(413, QUOTA, _create, c)
    assert len(_ids(c)) == 200
