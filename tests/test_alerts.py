"""alerts / alerts ack through the CLI against real PostgreSQL."""

import json

from everyday_support import assert_refused, query, scalar, snapshot

AMAN = "aman@example.com"
PRIYA = "priya@example.com"


def cross(run_cli, url, user, category, amount):
    result = run_cli(
        url,
        "expense",
        "add",
        "--user",
        user,
        "--category",
        category,
        "--amount",
        amount,
        "--date",
        "2025-05-25",
    )
    assert result.exit_code == 0, result.output


def test_alerts_lists_newest_first_and_filters_by_user(run_cli, seeded_url):
    cross(run_cli, seeded_url, AMAN, "Transport", "2000")
    cross(run_cli, seeded_url, PRIYA, "Food", "5000")
    everyone = run_cli(seeded_url, "alerts", "--format", "json")
    assert everyone.exit_code == 0, everyone.output
    ids = [row["id"] for row in json.loads(everyone.stdout)]
    assert ids == [
        i for (i,) in query(seeded_url, "select id from alerts order by fired_at desc, id desc")
    ]
    assert len(ids) == 2
    priya = json.loads(run_cli(seeded_url, "alerts", "--user", PRIYA, "--format", "json").stdout)
    assert [row["message"] for row in priya] == [
        "Budget exceeded for Food for May 2025. Spent: 5300.00 / 5000.00"
    ]
    table = run_cli(seeded_url, "alerts", "--user", AMAN)
    assert "Budget exceeded for Transport for May 2025. Spent: 2150.00 / 2000.00" in table.output


def test_alerts_ack_marks_read_and_unread_filter_hides_it(run_cli, seeded_url):
    cross(run_cli, seeded_url, AMAN, "Transport", "2000")
    alert_id = scalar(seeded_url, "select id from alerts")
    result = run_cli(seeded_url, "alerts", "ack", str(alert_id))
    assert result.exit_code == 0, result.output
    assert f"Acknowledged alert {alert_id}" in result.output
    assert scalar(seeded_url, "select acknowledged_at is not null from alerts") is True
    unread = run_cli(seeded_url, "alerts", "--unread", "--format", "json")
    assert json.loads(unread.stdout) == []
    assert len(json.loads(run_cli(seeded_url, "alerts", "--format", "json").stdout)) == 1


def test_alerts_ack_twice_is_a_no_op_that_says_so(run_cli, seeded_url):
    cross(run_cli, seeded_url, AMAN, "Transport", "2000")
    alert_id = scalar(seeded_url, "select id from alerts")
    assert run_cli(seeded_url, "alerts", "ack", str(alert_id)).exit_code == 0
    first = scalar(seeded_url, "select acknowledged_at from alerts")
    again = run_cli(seeded_url, "alerts", "ack", str(alert_id))
    assert again.exit_code == 0, again.output
    assert "already acknowledged" in again.output and "nothing changed" in again.output
    assert scalar(seeded_url, "select acknowledged_at from alerts") == first


def test_alerts_ack_unknown_or_bad_id_is_refused(run_cli, seeded_url):
    before = snapshot(seeded_url)
    assert_refused(run_cli(seeded_url, "alerts", "ack", "777"), "alert 777 does not exist")
    assert_refused(run_cli(seeded_url, "alerts", "ack", "x1"), 'alert id "x1" is not an id')
    assert snapshot(seeded_url) == before


def test_alerts_unknown_user_is_refused(run_cli, seeded_url):
    assert_refused(
        run_cli(seeded_url, "alerts", "--user", "ghost@example.com"),
        'user "ghost@example.com" does not exist',
    )
