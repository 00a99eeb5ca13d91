"""The markdown report of a bench/compare run: the full table, then infra against the goals.

Used by compare.py after every measurement; also on its own, to print the report of a run's
results.json again:  python3 bench/compare/report.py /tmp/infra-bench-compare/results.json
"""

import json
import statistics
import sys

HEADER = ("| N | added RTT | case | tool | runs | median s | min–max s | × infra | × floor "
          "| peak MB (controller) | infra per host: remote commands (planning; +1 apply "
          "script on a host with changes); new SSH logins |")


def matching(results, n, rtt, case, tool):
    return [r for r in results if (r["n"], r["rtt"], r["case"], r["tool"]) == (n, rtt, case, tool)]


def median(results, n, rtt, case, tool):
    walls = [r["wall"] for r in matching(results, n, rtt, case, tool)]
    return statistics.median(walls) if walls else None


def table(results):
    lines = [HEADER, "|---|---|---|---|---|---|---|---|---|---|---|"]
    # In the order the run measured them.
    for n, rtt, case in dict.fromkeys((r["n"], r["rtt"], r["case"]) for r in results):
        floor = median(results, n, rtt, "floor", "floor")
        tools = dict.fromkeys(r["tool"] for r in results
                              if (r["n"], r["rtt"], r["case"]) == (n, rtt, case))
        med = {t: median(results, n, rtt, case, t) for t in tools}
        base = None if case == "floor" else med.get("infra")
        for t in tools:
            mine = matching(results, n, rtt, case, t)
            walls = [r["wall"] for r in mine]
            cmds = [r["extra"]["remote_commands"] for r in mine if "remote_commands" in r["extra"]]
            logins = [r["extra"]["logins"] for r in mine if "logins" in r["extra"]]
            ratio = "1" if t == "infra" else (f"{med[t] / base:.1f}" if base else "")
            vs_floor = f"{med[t] / floor:.2f}" if floor and t != "floor" else ""
            per_host = f"{statistics.median(cmds) / n:g}" if cmds else ""
            if logins:
                per_host += f"; {statistics.median(logins) / n:g}"
            lines.append(
                f"| {n} | {rtt} ms | {case} | {t} | {len(walls)} | {med[t]:.2f} "
                f"| {min(walls):.2f}–{max(walls):.2f} | {ratio} | {vs_floor} "
                f"| {max(r['mem'] for r in mine) / 2**20:.0f} | {per_host} |")
    return lines


def goals(results):
    """infra against the issue's goals, for each N and RTT of the run (medians)."""
    def ratio(a, b, fmt="{:.2f}×"):
        return fmt.format(a / b) if a and b else "not measured"

    lines = ["| N | added RTT | no-op plan ÷ floor (goal ≤ 1.5) | no-op apply ÷ floor (≤ 1.5) "
             "| one-file change ÷ floor (≤ 2) | pyinfra first ÷ infra first (≥ 4) "
             "| pyinfra no-op ÷ infra no-op | Ansible no-op ÷ infra no-op "
             "| remote commands per host, no-op plan (≤ 2) "
             "| kept connections: no-op plan ÷ floor over open connections |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n, rtt in dict.fromkeys((r["n"], r["rtt"]) for r in results):
        m = lambda case, tool: median(results, n, rtt, case, tool)  # noqa: E731
        floor, floor_open = m("floor", "floor"), m("floor", "floor-open")
        cmds = [r["extra"]["remote_commands"] / n
                for r in matching(results, n, rtt, "check", "infra")
                if "remote_commands" in r["extra"]]
        lines.append(
            f"| {n} | {rtt} ms | {ratio(m('check', 'infra'), floor)} "
            f"| {ratio(m('noop', 'infra'), floor)} | {ratio(m('change', 'infra'), floor)} "
            f"| {ratio(m('first', 'pyinfra'), m('first', 'infra'), '{:.1f}×')} "
            f"| {ratio(m('noop', 'pyinfra'), m('noop', 'infra'), '{:.1f}×')} "
            f"| {ratio(m('noop', 'ansible'), m('noop', 'infra'), '{:.0f}×')} "
            f"| {format(statistics.median(cmds), 'g') if cmds else 'not measured'} "
            f"| {ratio(m('check', 'infra-kept'), floor_open)} |")
    return lines


def report(results):
    return "\n".join(table(results) + ["", "Against the goals (medians of this run):", ""]
                     + goals(results)) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        sys.stdout.write(report(json.load(f)))
