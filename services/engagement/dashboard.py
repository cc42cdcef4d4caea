"""The supervisor dashboard: the overview (pure) and its server-rendered page with SVG charts."""

from __future__ import annotations

from html import escape
from statistics import mean
from typing import Any

from services.plumbing.storage import Document


def build_overview(
    sessions: list[Document], outcomes: list[Document], clients: list[Document], clinicians: list[Document]
) -> dict[str, Any]:
    """Attendance and outcomes per program and clinician, clinicians at burnout risk, clients behind."""
    programs: dict[str, dict[str, Any]] = {}
    per_clinician: dict[str, dict[str, int]] = {}
    for s in sessions:
        if s.get("cancelled"):
            continue
        prog = programs.setdefault(
            s.get("program_id") or "unassigned",
            {"sessions": 0, "expected": 0, "attended": 0, "late": 0, "absent": 0, "clients": set()},
        )
        clin = per_clinician.setdefault(s.get("clinician_id", ""), {"expected": 0, "attended": 0})
        prog["sessions"] += 1
        for e in s.get("entries", []):
            prog["expected"] += 1
            clin["expected"] += 1
            prog["clients"].add(e["client_id"])
            if e["status"] == "absent":
                prog["absent"] += 1
            else:
                prog["attended"] += 1
                clin["attended"] += 1
                prog["late"] += e["status"] == "late"
    client_program: dict[str, str] = {}
    for name, prog in programs.items():
        for c in prog["clients"]:
            client_program.setdefault(c, name)
    scores: dict[tuple[str, str], list[int]] = {}
    for o in outcomes:
        scores.setdefault((client_program.get(o["client_id"], "unassigned"), o["instrument"]), []).append(o["total"])
    program_rows = []
    for name, prog in sorted(programs.items()):
        phq, gad = scores.get((name, "PHQ-9"), []), scores.get((name, "GAD-7"), [])
        program_rows.append(
            {
                "program_id": name,
                "sessions": prog["sessions"],
                "attendance_rate": round(prog["attended"] / prog["expected"], 3) if prog["expected"] else 0.0,
                "late_rate": round(prog["late"] / prog["expected"], 3) if prog["expected"] else 0.0,
                "absences": prog["absent"],
                "mean_phq9": round(mean(phq), 1) if phq else None,
                "mean_gad7": round(mean(gad), 1) if gad else None,
                "outcome_count": len(phq) + len(gad),
            }
        )
    clinician_rows = []
    for c in clinicians:
        load = c.get("load", {})
        risk = c.get("risk", {})
        att = per_clinician.get(c["_id"], {"expected": 0, "attended": 0})
        clinician_rows.append(
            {
                "clinician_id": c["_id"],
                "burnout_risk": risk.get("value", 0.0),
                "elevated": bool(risk.get("elevated")),
                "peak_day_hours": load.get("peak_day_hours", 0.0),
                "on_screen_hours_7_days": load.get("on_screen_hours_7_days", 0.0),
                "max_back_to_back": load.get("max_back_to_back_7_days", 0),
                "caseload": load.get("caseload", 0),
                "attendance_rate": round(att["attended"] / att["expected"], 3) if att["expected"] else None,
                "top_factors": _top(risk),
            }
        )
    behind = [
        {
            "client_id": c["_id"],
            "engagement_risk": c.get("risk", {}).get("value", 0.0),
            "elevated": bool(c.get("risk", {}).get("elevated")),
            "attendance_rate_7d": c.get("windows", {}).get("7", {}).get("attendance_rate", 0.0),
            "top_factors": _top(c.get("risk", {})),
        }
        for c in clients
        if c.get("risk", {}).get("elevated")
    ]
    return {
        "programs": program_rows,
        "clinicians": sorted(clinician_rows, key=lambda r: -r["burnout_risk"]),
        "clinicians_at_risk": [r["clinician_id"] for r in clinician_rows if r["elevated"]],
        "clients_behind": sorted(behind, key=lambda r: -r["engagement_risk"]),
    }


def _top(risk: dict[str, Any], n: int = 3) -> list[str]:
    factors = sorted(risk.get("factors", []), key=lambda f: -f.get("contribution", 0.0))
    return [f["explanation"] for f in factors[:n] if f.get("contribution", 0.0) > 0]


def bar_chart(title: str, chart_id: str, rows: list[tuple[str, float]], maximum: float, fmt: str = "{:.0%}") -> str:
    """A horizontal bar chart as inline SVG."""
    height = 28 * max(1, len(rows)) + 30
    parts = [
        f"<figure><figcaption>{escape(title)}</figcaption>"
        f'<svg id="{chart_id}" role="img" aria-label="{escape(title)}" width="640" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, value) in enumerate(rows):
        y = 10 + i * 28
        width = 0 if maximum <= 0 else max(2, int(380 * min(value, maximum) / maximum))
        colour = "#c0392b" if chart_id.endswith("risk") and value >= 0.5 else "#2e86c1"
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="13">{escape(label)}</text>'
            f'<rect class="bar" data-label="{escape(label)}" data-value="{value}" x="200" y="{y}" '
            f'width="{width}" height="20" fill="{colour}"></rect>'
            f'<text x="{205 + width}" y="{y + 15}" font-size="12">{escape(fmt.format(value))}</text>'
        )
    if not rows:
        parts.append('<text x="0" y="20" font-size="13">no data yet</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def render_page(overview: dict[str, Any]) -> str:
    programs, clinicians, behind = overview["programs"], overview["clinicians"], overview["clients_behind"]
    charts = [
        bar_chart(
            "Attendance rate per program",
            "attendance-chart",
            [(p["program_id"], p["attendance_rate"]) for p in programs],
            1.0,
        ),
        bar_chart(
            "Mean PHQ-9 per program",
            "phq9-chart",
            [(p["program_id"], float(p["mean_phq9"])) for p in programs if p["mean_phq9"] is not None],
            27.0,
            "{:.1f}",
        ),
        bar_chart(
            "Clinician burnout risk",
            "burnout-risk",
            [(c["clinician_id"], c["burnout_risk"]) for c in clinicians],
            1.0,
            "{:.2f}",
        ),
        bar_chart(
            "Clients falling behind: engagement risk",
            "engagement-risk",
            [(c["client_id"], c["engagement_risk"]) for c in behind],
            1.0,
            "{:.2f}",
        ),
    ]
    rows = "".join(
        f'<tr class="clinician"><td>{escape(c["clinician_id"])}</td><td>{c["burnout_risk"]:.2f}</td>'
        f"<td>{'yes' if c['elevated'] else 'no'}</td><td>{c['peak_day_hours']:.1f}</td>"
        f"<td>{c['max_back_to_back']}</td><td>{c['caseload']}</td>"
        f"<td>{escape('; '.join(c['top_factors']))}</td></tr>"
        for c in clinicians
    )
    behind_rows = "".join(
        f'<tr class="client-behind"><td>{escape(c["client_id"])}</td><td>{c["engagement_risk"]:.2f}</td>'
        f"<td>{c['attendance_rate_7d']:.0%}</td><td>{escape('; '.join(c['top_factors']))}</td></tr>"
        for c in behind
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>IOP oversight dashboard</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; background: #fafafa; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 24px; }}
figure {{ background: #fff; border: 1px solid #ddd; padding: 12px; margin: 0; }}
figcaption {{ font-weight: bold; margin-bottom: 8px; }}
table {{ border-collapse: collapse; background: #fff; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 13px; }}
</style></head>
<body>
<h1>IOP oversight: attendance, outcomes, burnout and engagement risk</h1>
<form id="sign-out" method="post" action="/dashboard/signout"><button type="submit">Sign out</button></form>
<p id="summary">{len(programs)} programs, {len(clinicians)} clinicians
({len(overview["clinicians_at_risk"])} at burnout risk), {len(behind)} clients falling behind.</p>
<div class="charts">{"".join(charts)}</div>
<h2>Clinicians</h2>
<table id="clinicians"><tr><th>clinician</th><th>burnout risk</th><th>elevated</th><th>peak day h</th>
<th>back to back</th><th>caseload</th><th>why</th></tr>{rows}</table>
<h2>Clients falling behind</h2>
<table id="clients-behind"><tr><th>client</th><th>engagement risk</th><th>attendance 7d</th><th>why</th></tr>
{behind_rows}</table>
</body></html>"""


def render_sign_in(message: str) -> str:
    """The dashboard's sign-in page: the bearer token is POSTed in a form body (it becomes the
    dashboard's HttpOnly cookie), so it never appears in a URL, a log line or the browser's history."""
    note = f'<p id="sign-in-problem">{escape(message)}</p>' if message else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>IOP oversight dashboard: sign in</title>
<style>body {{ font-family: sans-serif; margin: 24px; color: #222; }} input {{ width: 420px; }}</style></head>
<body>
<h1>IOP oversight dashboard</h1>
{note}
<form id="sign-in" method="post" action="/dashboard/session">
<label for="access_token">Supervisor or platform bearer token</label><br>
<input id="access_token" name="access_token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button>
</form>
</body></html>"""
