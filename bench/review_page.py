"""Review page: server time and total transfer size (HTML + every static asset it loads).

Target: total transfer <= 150 KB uncompressed, no third-party hosts.
"""

from __future__ import annotations

import argparse
import re
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from bench.common import Client, ensure_database, percentiles, print_table, server, setup_django


def login(port: int, username: str) -> str:
    client = Client(port)
    client.conn.request("GET", "/login/")
    response = client.conn.getresponse()
    page = response.read().decode()
    cookies = SimpleCookie(response.getheader("Set-Cookie"))
    csrf = cookies["csrftoken"].value
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    body = urlencode({"username": username, "password": username, "csrfmiddlewaretoken": token})
    client.conn.request(
        "POST",
        "/login/",
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf}",
            "Referer": f"http://127.0.0.1:{port}/login/",
        },
    )
    response = client.conn.getresponse()
    response.read()
    session = SimpleCookie(response.getheader("Set-Cookie"))["sessionid"].value
    return f"csrftoken={csrf}; sessionid={session}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    ensure_database()
    setup_django()
    from bench.fixtures import bench_project, bench_user

    project = bench_project("bench-queue", reviews_per_item=1)
    bench_user(project, "bench-page", "reviewer")
    path = f"/projects/{project.slug}/review/"
    with server() as (port, _pid):
        client = Client(port, cookie=login(port, "bench-page"))
        samples = []
        html = b""
        for _ in range(args.requests):
            t0 = time.perf_counter()
            status, html = client.request("GET", path)
            samples.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"review page answered {status}")
        text = html.decode()
        assets = re.findall(r'<(?:script|img)[^>]+src="([^"]+)"|<link[^>]+href="([^"]+)"', text)
        urls = [a or b for a, b in assets]
        third_party = [u for u in urls if u.startswith(("http://", "https://", "//"))]
        sizes = {}
        for url in urls:
            if url in third_party:
                continue
            status, data = client.request("GET", url)
            sizes[url] = len(data) if status == 200 else 0
    p = percentiles(samples)
    total = len(html) + sum(sizes.values())
    rows = [
        ("server time p50/p95/p99", f"{p['p50']:.1f}/{p['p95']:.1f}/{p['p99']:.1f} ms", "loopback, warm"),
        ("HTML", f"{len(html) / 1024:.1f} KB", ""),
    ]
    rows += [(f"  {url}", f"{size / 1024:.1f} KB", "") for url, size in sizes.items()]
    rows.append(("total transfer (uncompressed)", f"{total / 1024:.1f} KB", "target <= 150 KB"))
    rows.append(("third-party assets", str(len(third_party)), "must be 0"))
    print_table("Review page (100,000-item project)", rows)


if __name__ == "__main__":
    main()
