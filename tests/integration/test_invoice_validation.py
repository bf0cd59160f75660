"""The invoices the builder makes pass the official rules: OpenPeppol's BIS Billing 3.0 release
(UBL 2.1 schema, CEN EN 16931 rules, Peppol rules) and CEN's own EN 16931 UBL rules, checked by
phive from Maven Central through infra/einvoice-validator.sh (installed by `make setup`).
A tampered invoice fails, so a validator that passed everything would fail this test."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from marketplace.core.invoice import build_invoice
from tests.invoice_cases import CASES, VAT_NUMBERS, built, domestic_sale_in, random_sales

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "infra" / "einvoice-validator.sh"
RULE_SETS = {"eu.peppol.bis3:invoice:2026.5", "eu.cen.en16931:ubl:1.3.16"}

pytestmark = pytest.mark.integration


@dataclass
class Report:
    # file name -> rule set -> "valid" | "invalid"
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    # file name -> rule ids of the errors found
    errors: dict[str, set[str]] = field(default_factory=dict)
    warnings: dict[str, set[str]] = field(default_factory=dict)


def validate(paths: list[Path]) -> tuple[int, Report]:
    done = subprocess.run(
        [str(VALIDATOR), "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode in (0, 1), f"the validator did not run:\n{done.stderr[-3000:]}"
    report = Report()
    for row in done.stdout.splitlines():
        kind, path, rule_set, *rest = row.split("\t")
        name = Path(path).name
        if kind == "result":
            report.results.setdefault(name, {})[rule_set] = rest[0]
        elif kind == "finding":
            level, rule_id = rest[0], rest[1]
            bucket = report.errors if level == "ERROR" else report.warnings
            bucket.setdefault(name, set()).add(rule_id)
    return done.returncode, report


def tamper(xml: bytes, old: bytes, new: bytes) -> bytes:
    assert xml.count(old) == 1, old
    return xml.replace(old, new)


def test_the_deals_invoices_pass_and_tampered_ones_fail(tmp_path: Path) -> None:
    paths = []
    for name in CASES:
        path = tmp_path / f"{name}.xml"
        path.write_bytes(built(name))
        paths.append(path)

    # A domestic sale in each member state (their Peppol rules differ), and sales of several
    # lines at prices and quantities drawn at random, for the rounding rules.
    more = {f"in_{c}.xml": build_invoice(domestic_sale_in(c)) for c in VAT_NUMBERS}
    more |= {f"random_{i}.xml": build_invoice(inv) for i, inv in enumerate(random_sales(22, 12))}
    for name, xml in more.items():
        path = tmp_path / name
        path.write_bytes(xml)
        paths.append(path)

    sale = built("domestic_sale")
    broken = {
        # The amount due no longer equals the total with VAT.
        "wrong_total.xml": (
            tamper(sale, b">525.90</cbc:PayableAmount>", b">525.99</cbc:PayableAmount>"),
            "BR-CO-16",
        ),
        # VAT of 20 % on 438.25 is 87.65, not 86.00.
        "wrong_vat.xml": (
            tamper(
                sale,
                b'<cbc:TaxAmount currencyID="EUR">87.65</cbc:TaxAmount><cac:TaxCategory>',
                b'<cbc:TaxAmount currencyID="EUR">86.00</cbc:TaxAmount><cac:TaxCategory>',
            ),
            "BR-CO-17",
        ),
        # Peppol's own rule: a buyer reference or an order reference.
        "no_reference.xml": (
            tamper(sale, b"<cbc:BuyerReference>match 7f3c2a</cbc:BuyerReference>", b""),
            "PEPPOL-EN16931-R003",
        ),
    }
    for name, (xml, _) in broken.items():
        path = tmp_path / name
        path.write_bytes(xml)
        paths.append(path)

    code, report = validate(paths)

    assert code == 1  # the broken ones fail the run
    for name in [f"{case}.xml" for case in CASES] + list(more):
        assert report.results[name] == dict.fromkeys(RULE_SETS, "valid"), name
        assert name not in report.errors, report.errors.get(name)
        assert name not in report.warnings, report.warnings.get(name)
    for name, (_, rule) in broken.items():
        assert "invalid" in report.results[name].values(), name
        assert rule in report.errors[name], (name, report.errors.get(name))


def test_the_validator_passes_a_valid_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "transport.xml"
    path.write_bytes(built("transport_cross_border"))
    code, report = validate([path])
    assert code == 0
    assert report.results["transport.xml"] == dict.fromkeys(RULE_SETS, "valid")
