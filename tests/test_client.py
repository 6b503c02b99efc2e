"""Configuration, connect() and the module-level API: happy paths and failure modes."""

from __future__ import annotations

import pandas as pd
import pytest
from servers import RedisProcess

import chunkframe as cf
from chunkframe.core.config import resolve
from chunkframe.core.errors import InvalidArgumentError, InvalidDatasetIdError, SchemaMismatchError


def test_settings_come_from_arguments_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHUNKFRAME_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("CHUNKFRAME_STORE", "memory://cf-env")
    monkeypatch.setenv("CHUNKFRAME_PREFIX", "envp")
    s = resolve()
    assert s.home == tmp_path / "h" and s.store_url == "memory://cf-env" and s.prefix == "envp"
    assert s.catalog == str(tmp_path / "h" / "catalog.db") and s.redis_url is None
    s = resolve(store=tmp_path / "st", redis="redis://x:1", prefix="argp")
    assert s.store_url == str(tmp_path / "st") and s.redis_url == "redis://x:1"
    assert s.prefix == "argp"



def test_storage_options_come_from_the_environment_unless_given(tmp_path, monkeypatch):
    monkeypatch.setenv("CHUNKFRAME_STORAGE_OPTIONS", '{"endpoint_url": "http://s3.local:9000"}')
    assert resolve(home=tmp_path).storage_options == {"endpoint_url": "http://s3.local:9000"}
    assert resolve(home=tmp_path, storage_options={"anon": True}).storage_options == {"anon": True}
    assert resolve(home=tmp_path, storage_options={}).storage_options == {}  # given: replaces
    monkeypatch.setenv("CHUNKFRAME_STORAGE_OPTIONS", '{"secret": "s3cret"')
    with pytest.raises(InvalidArgumentError, match="CHUNKFRAME_STORAGE_OPTIONS is not JSON") as info:
        resolve(home=tmp_path)
    assert "s3cret" not in str(info.value) and "endpoint_url" in str(info.value)  # an example
    monkeypatch.setenv("CHUNKFRAME_STORAGE_OPTIONS", '["endpoint_url"]')
    with pytest.raises(InvalidArgumentError, match="must be a JSON object"):
        resolve(home=tmp_path)

@pytest.mark.parametrize("options, error, match", [
    ({"chunk_cache_bytes": -1}, InvalidArgumentError, "chunk_cache_bytes"),
    ({"lock_ttl": 0}, InvalidArgumentError, "lock_ttl"),
    ({"bogus": 1}, TypeError, "bogus"),
])
def test_bad_connect_options(tmp_path, redis_server, options, error, match):
    with pytest.raises(error, match=match):
        cf.connect(store=tmp_path / "s", redis=redis_server.url, catalog=tmp_path / "c.db",
                   home=tmp_path, **options)


def test_module_level_api_uses_the_last_connect(client):
    ds = cf.ingest(pd.DataFrame({"a": [1, 2, 3]}), "mod", progress=False)
    assert cf.open("mod").get(2, "a") == 3 == ds.get(-1, "a")
    assert "mod" in set(cf.datasets()["id"])
    cf.context("mod-notes").put("k", "v")
    assert cf.context("mod-notes").get("k") == "v"
    assert "mod-notes" in set(cf.contexts()["context_id"])
    with pytest.raises(InvalidDatasetIdError):
        cf.open("../mod")
    with pytest.raises(cf.DatasetNotFoundError):
        cf.open("nope")


def test_dataset_failure_modes(client):
    ds = client.ingest(pd.DataFrame({"a": range(10)}), "fm", chunk_rows=4, progress=False)
    with pytest.raises(KeyError, match="no column 'zz'"):
        list(ds.iter_chunks(["zz"]))
    with pytest.raises(KeyError, match="no column 'zz'"):
        ds.to_pandas(["zz"])
    with pytest.raises(ValueError, match="flat"):
        ds.get_many([[1, 2]])
    with pytest.raises(TypeError):
        ds.slice("a", 3)  # type: ignore[arg-type]
    with pytest.raises(SchemaMismatchError, match="missing"):
        ds.append(pd.DataFrame({"b": [1]}))
    with pytest.raises(SchemaMismatchError, match="'a'"):
        ds.append(pd.DataFrame({"a": ["x"]}))
    assert len(ds) == 10 and ds.verify(progress=False).empty
    assert ds.append(pd.DataFrame({"a": [10]})).get(10, "a") == 10


# -- cf.open of a missing id --------------------------------------------------------------------

def test_open_of_a_missing_id_when_none_exist(client):
    with pytest.raises(cf.DatasetNotFoundError, match="no datasets exist yet") as err:
        cf.open("sensors")
    assert isinstance(err.value, KeyError) and isinstance(err.value, cf.ChunkFrameError)
    message = str(err.value)
    assert "'sensors'" in message and "cf.ingest(source, 'sensors')" in message
    assert "cf.datasets()" in message


def test_open_of_a_missing_id_suggests_near_names(client):
    for name in ("sensors", "sensors-2025", "flights", "stocks"):
        cf.ingest(pd.DataFrame({"a": [1]}), name, progress=False)
    with pytest.raises(cf.DatasetNotFoundError) as err:
        cf.open("sensor")
    message = str(err.value)
    assert "did you mean ['sensors', 'sensors-2025']" in message
    assert "flights" not in message and "stocks" not in message
    with pytest.raises(cf.DatasetNotFoundError, match=r"did you mean \['flights'\]"):
        cf.open("Flights")  # ids are case-sensitive; the hint shows the right spelling


def test_open_of_a_missing_id_lists_known_ones_when_none_is_near(client):
    for i in range(12):
        cf.ingest(pd.DataFrame({"a": [i]}), f"table-{i:02d}", progress=False)
    with pytest.raises(cf.DatasetNotFoundError) as err:
        cf.open("zzz")
    message = str(err.value)
    assert "did you mean" not in message
    assert "known datasets: ['table-00', 'table-01'" in message
    assert "table-09'" in message and "table-10" not in message  # the first ten only


def test_open_of_an_invalid_id_is_not_a_miss(client):
    with pytest.raises(InvalidDatasetIdError):
        cf.open("../etc")


def test_one_rule_redacts_urls_and_messages_quoting_them():
    from chunkframe.core.config import redact

    assert redact("redis://tok3n@h:1") == "redis://***@h:1"  # a lone userinfo is a secret
    assert redact("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"  # host: after the last @
    text = ('connecting to "postgresql://u:pw@h:5/db?sslpassword=a&passwd=b" failed: '
            "password=c token=d secret=e then rediss://:f@r:6")
    assert redact(text) == ('connecting to "postgresql://u:***@h:5/db?sslpassword=***&passwd=***"'
                            " failed: password=*** token=*** secret=*** then rediss://:***@r:6")
    assert redact(None) is None and redact("/a/b c.db") == "/a/b c.db"


def test_the_postgres_catalog_redacts_its_errors_by_the_same_rule():
    pytest.importorskip("psycopg")
    from chunkframe.storage.catalog_db import PostgresDatabase

    with pytest.raises(cf.BackendUnavailableError) as err:  # psycopg quotes the URL it refused
        PostgresDatabase("postgresql://tok3n@[::1/db?passwd=s3cret")
    assert "tok3n" not in str(err.value) and "s3cret" not in str(err.value)
    assert "postgresql://***@[::1/db?passwd=***" in str(err.value)


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@localhost:1/0", "redis://:***@localhost:1/0"),
    ("redis://ana:s3cret@localhost:1", "redis://ana:***@localhost:1"),
    ("rediss://localhost:1?password=s3cret&ssl_cert_reqs=none",
     "rediss://localhost:1?password=***&ssl_cert_reqs=none"),
])
def test_passwords_never_shown_in_errors_or_reprs(tmp_path, url, shown):
    from chunkframe.core.config import redact, resolve

    assert redact(url) == shown
    assert redact("unix:///tmp/r.sock") == "unix:///tmp/r.sock"  # nothing to hide: as given
    with pytest.raises(cf.BackendUnavailableError) as err:  # nothing listens on port 1
        cf.connect(store=tmp_path / "s", redis=url, catalog=tmp_path / "c.db", home=tmp_path)
    assert "s3cret" not in str(err.value) and shown in str(err.value)
    settings = resolve(tmp_path / "s", url, tmp_path / "c.db", tmp_path,
                       storage_options={"secret": "s3cret"})
    assert "s3cret" not in repr(settings)


def test_a_client_of_a_redis_with_a_password_never_shows_it(tmp_path):
    server = RedisProcess(password="s3cret").start()
    try:
        client = cf.connect(store=tmp_path / "s", redis=server.url, catalog=tmp_path / "c.db",
                            home=tmp_path)
        ds = client.ingest(pd.DataFrame({"x": [1, 2]}), "guarded", progress=False)
        assert ds.get(1)["x"] == 2  # the password reached Redis...
        for text in (repr(client), repr(client.settings), repr(ds)):
            assert "s3cret" not in text
        assert "password=***" in repr(client)
        with pytest.raises(cf.BackendUnavailableError) as err:  # ...and no error shows it
            cf.connect(store=tmp_path / "s", redis=server.url.replace("s3cret", "wrong"),
                       catalog=tmp_path / "c.db", home=tmp_path)
        assert "wrong" not in str(err.value) and "password=***" in str(err.value)
    finally:
        server.stop()
