"""Six uploads at once: four different files and two identical ones give five correct versions."""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor

from tests.dataset import data


def test_concurrent_uploads_give_five_versions(service):
    payloads = [data.csv_bytes(data.frame(rows=80 + i, seed=i)) for i in range(4)]
    payloads += [data.csv_bytes(data.frame(rows=200, seed=99))] * 2

    def upload(payload: bytes):
        return service.client.upload(io.BytesIO(payload), name="shared", filename="d.csv")

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(upload, payloads))

    assert sum(r.created for r in results) == 5
    assert len({r.version.ref.dataset_id for r in results}) == 1
    assert results[4].version.ref == results[5].version.ref  # the identical pair share one version
    numbers = sorted({r.version.ref.version for r in results})
    assert numbers == [1, 2, 3, 4, 5]
    versions = {v.ref.version: v for v in service.client.versions(results[0].version.ref.dataset_id)}
    assert len(versions) == 5
    for payload, result in zip(payloads, results, strict=False):
        stored = versions[result.version.ref.version]
        assert stored.sha256 == hashlib.sha256(payload).hexdigest()
        assert stored.row_count == payload.count(b"\n") - 1
        original = io.BytesIO()
        service.client.download(stored.ref.dataset_id, stored.ref.version, destination=original)
        assert original.getvalue() == payload
    # the losing identical upload removed its copy: two objects per version, no temporary files
    datasets, count, objects, temp = service.leftovers()
    assert (datasets, count, len(objects), temp) == (1, 5, 10, [])
