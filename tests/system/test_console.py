"""The web console (/console/): its routes and, in a real headless Chromium
driven by Selenium, the SQL editor, the schema view and the live cluster
view against a 3-node cluster."""
import os
import shutil

import pytest
import requests

from harness import BUILD, poll, start_with_users

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def get(node, path, **kw):
    return requests.get(node.url + path, allow_redirects=False, timeout=10, **kw)


def test_console_routes_redirects_and_files(cluster):
    n1 = cluster.node(1).start().wait_ready()
    r = get(n1, "/")
    assert (r.status_code, r.headers["Location"]) == (302, "/console/")
    r = get(n1, "/console")
    assert (r.status_code, r.headers["Location"]) == (301, "/console/")
    r = get(n1, "/console/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "<title>rqlite console</title>" in r.text
    for name, ctype in (("console.js", "text/javascript"), ("console.css", "text/css")):
        r = get(n1, "/console/" + name)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(ctype), name
        assert r.text.strip() and r.text == open(os.path.join(os.path.dirname(__file__), "..", "..", "src", "http",
                                                              "console", name)).read()
    assert get(n1, "/console/nope.js").status_code == 404
    assert get(n1, "/console/../status").status_code in (404, 200)  # normalised by the client, never a file read
    assert requests.post(n1.url + "/console/", timeout=10).status_code == 405
    assert requests.head(n1.url + "/console/", timeout=10).status_code == 200
    assert requests.get(n1.url + "/debug/vars", timeout=10).json()["http"]["ui"] >= 3


def test_console_needs_the_ui_permission(cluster, tmp_path):
    users = [{"username": "admin", "password": "pw", "perms": ["all"]},
             {"username": "viewer", "password": "pw2", "perms": ["ui"]},
             {"username": "reader", "password": "pw3", "perms": ["query"]}]
    n1 = start_with_users(cluster, tmp_path, users, ("admin", "pw"))
    # rqlite redirects before it looks at credentials
    assert get(n1, "/").status_code == 302
    r = get(n1, "/console/")
    assert r.status_code == 401 and r.headers.get("WWW-Authenticate") == 'Basic realm="rqlite"'
    assert get(n1, "/console/", auth=("reader", "pw3")).status_code == 401
    assert get(n1, "/console/", auth=("viewer", "pw2")).status_code == 200
    assert get(n1, "/console/console.js", auth=("admin", "pw")).status_code == 200


@pytest.fixture
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("python3-selenium is needed for the console test (make deps installs it)")
    if not os.access(CHROMEDRIVER, os.X_OK):
        pytest.fail("chromium-driver is needed for the console test (make deps installs it)")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def test_console_in_a_real_browser(cluster, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    n1, n2, n3 = cluster.start_three()
    d = browser
    d.get(n1.url + "/")
    assert d.current_url == n1.url + "/console/"
    assert d.title == "rqlite console"

    def run(sql):
        box = d.find_element(By.ID, "sql")
        box.clear()
        box.send_keys(sql)
        box.send_keys(Keys.CONTROL, Keys.ENTER)

    def results_text():
        return d.find_element(By.ID, "results").text

    run("CREATE TABLE fruit (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)")
    poll(lambda: "0 rows affected" in results_text(), what="the CREATE's result")
    run("INSERT INTO fruit(name, price) VALUES ('apple', 1.5);\nINSERT INTO fruit(name, price) VALUES ('fig; dried', NULL)")
    poll(lambda: results_text().count("1 row affected") == 2, what="two INSERT results")
    # a read, with column names and types, NULL shown as such
    run("SELECT * FROM fruit ORDER BY id")
    poll(lambda: "2 row(s)" in results_text(), what="the SELECT's rows")
    heads = [th.text.split("\n") for th in d.find_elements(By.CSS_SELECTOR, "#results th")]
    assert heads == [["id", "integer"], ["name", "text"], ["price", "real"]], heads
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in d.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
    assert cells == [["1", "apple", "1.5"], ["2", "fig; dried", "NULL"]], cells
    # errors in place, the others still run
    run("SELECT nope FROM fruit")
    poll(lambda: "Error: no such column: nope" in results_text(), what="the error shown")
    # the rows are on every node (the console wrote through the leader)
    for n in (n2, n3):
        poll(lambda: n.count("fruit") == 2, what="rows on node %s" % n.id)
    # schema view: the table with its columns
    poll(lambda: "fruit" in d.find_element(By.ID, "schema-list").text, what="the table in the schema view")
    schema = d.find_element(By.ID, "schema-list").text
    assert "name TEXT NOT NULL" in schema and "id INTEGER PK" in schema, schema
    run("CREATE INDEX fruit_name ON fruit(name)")
    poll(lambda: "index fruit_name" in d.find_element(By.ID, "schema-list").text, what="the index in the schema")
    # history keeps what ran
    assert "CREATE INDEX fruit_name" in d.find_element(By.ID, "history").text
    # the backup link downloads the database
    href = d.find_element(By.ID, "backup-sqlite").get_attribute("href")
    assert href == n1.url + "/db/backup"
    assert requests.get(href, timeout=10).content[:16] == b"SQLite format 3\x00"

    # cluster view: three nodes, one leader, then node 3 stopped shows unreachable
    d.find_element(By.ID, "tab-cluster").click()

    def node_rows():
        # read in one script: the view replaces its rows every 2 s
        return d.execute_script(
            "const o = {}; for (const tr of document.querySelectorAll('#nodes tbody tr'))"
            " o[tr.dataset.id] = {cls: tr.className, cells: [...tr.cells].map((c) => c.textContent)};"
            " return o;")
    poll(lambda: len(node_rows()) == 3, what="three nodes in the cluster view")
    rows = node_rows()
    assert "leader" in rows["1"]["cls"] and rows["1"]["cells"][3] == "leader", rows
    assert [rows[i]["cells"][3] for i in "23"] == ["follower", "follower"], rows
    poll(lambda: all(r["cells"][6].isdigit() and r["cells"][7] == "0" for r in node_rows().values()),
         what="applied indexes, no lag")
    n3.kill()
    poll(lambda: "down" in node_rows()["3"]["cls"], timeout=20, what="node 3 shown unreachable")
    assert node_rows()["3"]["cells"][5].startswith("no"), node_rows()
    shots = os.path.join(BUILD, "artifacts")
    os.makedirs(shots, exist_ok=True)
    d.save_screenshot(os.path.join(shots, "console-cluster.png"))
    d.find_element(By.ID, "tab-sql").click()
    d.save_screenshot(os.path.join(shots, "console-sql.png"))
    # no JavaScript errors in the browser's log
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
