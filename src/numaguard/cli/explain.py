"""``numaguard explain RULE`` and ``numaguard rules``: the rules' documentation."""

from __future__ import annotations

import argparse
import sys

from numaguard.cli import EXIT_OK
from numaguard.cli.common import _known_rules, _unknown_rule
from numaguard.errors import NumaguardError


def cmd_explain(args: argparse.Namespace) -> int:
    from numaguard.report import rules as docs

    if args.all and args.rule:
        raise NumaguardError("give a rule ID or --all, not both")
    if args.all:
        sys.stdout.write(docs.rules_markdown() if args.format == "markdown"
                         else docs.rules_text())
        return EXIT_OK
    if not args.rule:
        raise NumaguardError("name a rule ID (e.g. NG101) or --all")
    known = _known_rules()
    rule = known.get(args.rule.strip().upper())
    if rule is None:
        raise NumaguardError(_unknown_rule(args.rule, known))
    sys.stdout.write(docs.explain_markdown(rule) if args.format == "markdown"
                     else docs.explain_text(rule))
    return EXIT_OK


def cmd_rules(args: argparse.Namespace) -> int:
    args.all, args.rule = True, None
    return cmd_explain(args)


def _explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rule", nargs="?", metavar="RULE", help="a rule ID such as NG101")
    p.add_argument("--all", action="store_true", help="every rule")
    p.add_argument("--format", choices=("text", "markdown"), default="text")


def _rules_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "markdown"), default="text")
