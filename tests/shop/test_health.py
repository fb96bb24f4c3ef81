from django.db import connection
from django.test.utils import CaptureQueriesContext


def test_healthz_answers_ok_without_touching_the_database(client, db):
    # given a running project / when the probe is called
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/healthz")
    # then it answers a tiny JSON document and made no query
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(queries) == 0
