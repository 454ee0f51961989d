"""Drives dtPyAppFramework's own LocalSecretStore for tresor's interop tests
and benchmarks. Run with the Python of the venv scripts/python-venv makes.

    framework.py make DIR APP      stdin: {"secrets": {...}, "settings": {...}}
    framework.py read DIR APP      stdout: {"secrets": {...}, "index": [...], "all": {...}}
    framework.py bench DIR APP N   stdout: {"get_s": ..., "set_s": ...} (N gets, N sets)

The password is KEYSTORE_PASSWORD (container mode: used verbatim); with it
unset the framework derives its machine password. The framework's print()
output goes to stderr, so stdout carries only JSON. Exit 3: the keystore does
not open (wrong password or altered file).
"""
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time


def open_store(root, app):
    password = os.environ.get("KEYSTORE_PASSWORD")
    if password:
        os.environ["CONTAINER_MODE"] = "True"
    else:
        os.environ.pop("CONTAINER_MODE", None)
    os.environ.pop("SECRETS_STORE_PASSWORD", None)
    from dtPyAppFramework.settings.secrets.local_secret_store import LocalSecretStore

    return LocalSecretStore(store_name="User_Local_Store", store_priority=0,
                            root_store_path=root, application_settings=None,
                            app_short_name=app, password=password or None)


def main():
    cmd, root, app = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
    real_stdout = sys.stdout
    scratch = tempfile.mkdtemp(prefix="dtpy-scratch-")
    os.chdir(scratch)  # the framework's error logger writes under the CWD
    try:
        with contextlib.redirect_stdout(sys.stderr):
            out = run(cmd, root, app)
    finally:
        shutil.rmtree(scratch, True)
    print(json.dumps(out, ensure_ascii=False), file=real_stdout)


def run(cmd, root, app):
    store = open_store(root, app)
    if cmd == "make":
        data = json.load(sys.stdin)
        for name, value in data.get("secrets", {}).items():
            store.set_secret(name, value)
        for name, value in data.get("settings", {}).items():
            store.set_persistent_setting(name, value)
        return {"keystore": store.store_path}
    if cmd == "read":
        try:
            index = store.get_index()
            secrets = {name: store.get_secret(name) for name in index}
            everything = store.store.get_all() if hasattr(store.store, "get_all") else {}
        except Exception as ex:  # wrong password: the framework fails on first read
            print(f"keystore does not open: {type(ex).__name__}", file=sys.stderr)
            sys.exit(3)
        return {"secrets": secrets, "index": index, "all": everything}
    if cmd == "bench":
        n = int(sys.argv[4])
        names = store.get_index()
        t = time.perf_counter()
        for i in range(n):
            store.get_secret(names[i % len(names)])
        get_s = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(n):
            store.set_secret(f"bench_set_{i}", f"value-{i}")
        set_s = time.perf_counter() - t
        return {"get_s": get_s, "set_s": set_s, "n": n}
    sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
