"""Procfile parsing: process lines, release, cron, static, and line-numbered problems."""

from __future__ import annotations

from hop3.appspec.model import CronJob, Problem, Problems
from hop3.appspec.procfile import parse_procfile


def parse(text: str) -> tuple[object, list[Problem]]:
    problems = Problems()
    data = parse_procfile(text, problems)
    return data, problems.items


def test_processes_release_cron_static() -> None:
    data, problems = parse(
        "# comment\n"
        "\n"
        "web: gunicorn -b 127.0.0.1:$PORT app:app\n"
        "worker:python worker.py --queue=a:b\n"
        "release: python manage.py migrate\n"
        "cron: */5 * * * *   python job.py  --x 'a b'\n"
        "cron: @daily ./nightly.sh\n"
        "static: ./public/\n"
        "   # indented comment\n"
        "my_proc-2: sleep 1\n"
    )
    assert problems == []
    assert data.processes == {
        "web": "gunicorn -b 127.0.0.1:$PORT app:app",
        "worker": "python worker.py --queue=a:b",
        "my_proc-2": "sleep 1",
    }
    assert data.release == "python manage.py migrate"
    assert data.static_dir == "public"
    assert data.cron == [
        CronJob("cron-1", "*/5 * * * *", "*-*-* *:00/5:00", "python job.py  --x 'a b'"),
        CronJob("cron-2", "@daily", "*-*-* 00:00:00", "./nightly.sh"),
    ]
    assert data.lines == {"web": 3, "worker": 4, "release": 5, "static": 8, "my_proc-2": 10}


def test_crlf_line_endings_are_tolerated() -> None:
    data, problems = parse("web: a\r\nworker: b\r\n")
    assert problems == []
    assert data.processes == {"web": "a", "worker": "b"}


def test_every_bad_line_is_reported_with_its_number() -> None:
    _, problems = parse(
        "web gunicorn app:app\n"  # 1: no colon
        "web:\n"  # 2: empty command
        "Web: x\n"  # 3: bad name (uppercase)
        "worker: a\n"  # 4: ok
        "worker: b\n"  # 5: duplicate
        "cron: 61 * * * * python job.py\n"  # 6: bad schedule
        "cron: * * * *\n"  # 7: missing command
        "static:\n"  # 8: no dir
        "static: ../etc\n"  # 9: escapes the app
        "a-very-long-process-name-indeed: x\n"  # 10: name too long
        ": x\n"  # 11: empty name
        "release: a\n"  # 12: ok
        "release: b\n"  # 13: duplicate
        "cron: 0 0 1 * 1 x\n"  # 14: dom and dow
        "just some words\n"  # 15: no colon at all
    )
    assert [(p.file, p.where) for p in problems] == [
        ("Procfile", f"line {n}") for n in (1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15)
    ]
    messages = [p.message for p in problems]
    assert messages[0] == "expected 'name: command', got 'web gunicorn app:app'"
    assert messages[1] == "'web' must be a command, got an empty string"
    assert messages[2].startswith("'Web' is not a valid process name: use 1-20 lowercase")
    assert messages[3] == "'worker' is defined twice (first on line 4); keep one"
    assert messages[4] == "cron schedule '61 * * * *' is invalid: minute must be 0-59"
    assert messages[5].startswith("cron needs a 5-field schedule and a command")
    assert messages[6] == "static needs a directory, e.g. 'static: public'"
    assert (
        messages[7] == "static directory must stay inside the app directory (no '..'), got '../etc'"
    )
    assert messages[8].startswith("'a-very-long-process-name-indeed' is not a valid process name")
    assert messages[9].startswith("'' is not a valid process name")
    assert messages[10] == "'release' is defined twice (first on line 12); keep one"
    assert messages[11].startswith(
        "cron schedule '0 0 1 * 1' is invalid: restricting both day-of-month and day-of-week"
    )
    assert messages[12] == "expected 'name: command', got 'just some words'"


def test_rendered_problem_text() -> None:
    _, problems = parse("\n\n\ncron: 61 * * * * python job.py\n")
    assert str(problems[0]) == (
        "Procfile line 4: cron schedule '61 * * * *' is invalid: minute must be 0-59"
    )


def test_commands_are_kept_verbatim() -> None:
    command = "sh -c 'echo \"$(date)\" {{ x }} %s ${HOME}' # not a comment"
    data, problems = parse(f"web: {command}\n")
    assert problems == []
    assert data.processes["web"] == command
