"""Formats and labels: Azure legacy (localized too) and partner exports, OCI cost reports, the
legacy CUR under Athena's names, FOCUS versions, the four FOCUS costs, Azure tags. Both dialects.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.billing import service
from app.costs.engine import DEFAULT_RULES, owner_team
from app.costs.ledger import node_infos
from app.models import BillingImport, BillingLineItem, Node
from bench import billing_samples as samples
from tests.app.billing.test_service import DATA

PAYG_SAMPLE = DATA / "formats" / "azure_payg_legacy_sample.csv"
OCI_SAMPLE = DATA / "formats" / "oci_cost_report_sample.csv"
FOCUS_SAMPLE = DATA / "gpu" / "focus_1.0_sample_gpu_rows.csv"


def _rows(session: Session) -> list[BillingLineItem]:
    return list(session.scalars(select(BillingLineItem).order_by(BillingLineItem.row_number)))


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _sum(rows: list[dict[str, str]], column: str, *factors: str) -> Decimal:
    total = Decimal(0)
    for row in rows:
        if row[column] in ("", "NULL"):
            continue
        value = Decimal(row[column])
        for factor in factors:
            value *= Decimal(row[factor] or 0)
        total += value
    return total


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


# -- FOCUS versions ------------------------------------------------------------------------------
FOCUS_BASE = ["BillingAccountId", "BillingPeriodStart", "ChargePeriodStart", "ChargePeriodEnd",
              "BilledCost", "EffectiveCost", "BillingCurrency"]  # fmt: skip
FOCUS_ROW = ["a", "2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", "1.50",
             "1.20", "USD"]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "label"),
    [
        ([], "focus-1.0"),
        (["SkuPriceDetails"], "focus-1.1"),
        (["CommitmentDiscountQuantity"], "focus-1.1"),
        (["InvoiceId"], "focus-1.2"),
        (["BillingAccountType", "SubAccountType"], "focus-1.2"),
        (["PricingCurrencyEffectiveCost"], "focus-1.2"),
        (["ServiceProviderName"], "focus-1.3"),
    ],
)
def test_focus_label_names_the_version(
    session: Session, tmp_path: Path, extra: list[str], label: str
) -> None:
    path = _write(tmp_path / "focus.csv", FOCUS_BASE + extra, [FOCUS_ROW + [""] * len(extra)])
    assert service.import_file(session, path=path).format == label


# -- AWS: the legacy CUR under Athena's names is not CUR 2.0 ------------------------------------
def _athena(name: str) -> str:
    """AWS's Athena name of a CUR column: "lineItem/UnblendedCost" → line_item_unblended_cost,
    "savingsPlan/SavingsPlanARN" → savings_plan_savings_plan_a_r_n, "resourceTags/user:team" →
    resource_tags_user_team."""
    snake = re.sub(r"[/:]", "_", re.sub(r"([A-Z])", r"_\1", name)).lower()
    return re.sub(r"_+", "_", snake).strip("_")


def test_legacy_cur_under_athena_names(session: Session, tmp_path: Path) -> None:
    legacy = DATA / "aws_cur_legacy_sample.csv"
    with legacy.open(newline="") as f:
        header, *body = list(csv.reader(f))
    athena = [_athena(h) for h in header]
    assert {"line_item_unblended_cost", "bill_payer_account_id", "identity_line_item_id",
            "product_product_name"} <= set(athena)  # fmt: skip
    assert not {"product", "resource_tags", "cost_category", "discount"} & set(athena)
    path = _write(tmp_path / "cur-athena.csv", athena, body)

    summary = service.import_file(session, path=path)

    assert summary.format == "aws-cur-athena"
    record = session.get(BillingImport, summary.import_id)
    assert record is not None
    assert record.source_system == "aws-cur"
    original = service.import_file(session, path=legacy)
    assert original.format == "aws-cur"
    assert summary.totals == original.totals
    direct = _sum(_read(legacy), "lineItem/UnblendedCost")
    assert Decimal(summary.totals["USD"]["BilledCost"]) == direct


def test_cur2_keeps_its_label(session: Session, tmp_path: Path) -> None:
    samples.write_cur2(tmp_path / "cur2.csv", 20)
    assert service.import_file(session, path=tmp_path / "cur2.csv").format == "aws-cur2"


# -- Azure ---------------------------------------------------------------------------------------
# The header of an Azure CSP (Microsoft Partner Agreement) cost export, as quoted in
# finopsfoundation/focus_converters#253.
PARTNER_LINE = (
    "billingAccountName,partnerName,resellerName,resellerMpnId,customerTenantId,"
    "customerName,costCenter,billingPeriodEndDate,billingPeriodStartDate,"
    "servicePeriodEndDate,servicePeriodStartDate,date,serviceFamily,productOrderId,"
    "productOrderName,consumedService,meterId,meterName,meterCategory,meterSubCategory,"
    "meterRegion,ProductId,ProductName,SubscriptionId,subscriptionName,publisherType,"
    "publisherId,publisherName,resourceGroupName,ResourceId,resourceLocation,location,"
    "effectivePrice,quantity,unitOfMeasure,chargeType,billingCurrency,pricingCurrency,"
    "costInBillingCurrency,costInUsd,exchangeRatePricingToBilling,exchangeRateDate,"
    "serviceInfo1,serviceInfo2,additionalInfo,tags,PayGPrice,frequency,term,reservationId,"
    "reservationName,pricingModel,unitPrice"
)
PARTNER_HEADER = next(csv.reader([PARTNER_LINE]))


def test_partner_export_is_mca(session: Session, tmp_path: Path) -> None:
    cells = {"partnerName": "Contoso Partner", "customerTenantId": "t-1", "date": "11/02/2026",
             "meterCategory": "Virtual Machines", "meterSubCategory": "NCads A100 v4 Series",
             "meterName": "NC24ads A100 v4", "SubscriptionId": "s-1",
             "ResourceId": samples.AZURE_VM,
             "quantity": "24", "chargeType": "Usage", "billingCurrency": "EUR",
             "costInBillingCurrency": "80.5", "PayGPrice": "3.67"}  # fmt: skip
    path = _write(tmp_path / "partner.csv", PARTNER_HEADER,
                  [[cells.get(h, "") for h in PARTNER_HEADER]])  # fmt: skip

    summary = service.import_file(session, path=path)

    assert summary.format == "azure-mca"
    assert summary.totals == {"EUR": {"BilledCost": "80.5", "EffectiveCost": "80.5",
                                      "ListCost": "88.08"}}  # fmt: skip
    (row,) = _rows(session)
    assert (row.x_instance_type, row.x_gpu_model, row.x_gpu_count) == (
        "Standard_NC24ads_A100_v4", "A100-80GB", 1)  # fmt: skip


def test_azure_payg_legacy_export(session: Session) -> None:
    """A pay-as-you-go usage export (project-koku/koku's test file, see the README)."""
    summary = service.import_file(session, path=PAYG_SAMPLE)

    assert summary.format == "azure-payg"
    source = _read(PAYG_SAMPLE)
    assert Decimal(summary.totals["USD"]["BilledCost"]) == _sum(source, "PreTaxCost")
    rows = _rows(session)
    assert [r.charge_period_start for r in rows] == [
        datetime(2019, 7, 29, tzinfo=UTC), datetime(2019, 7, 28, tzinfo=UTC),
        datetime(2019, 7, 28, tzinfo=UTC),
    ]  # fmt: skip
    assert {r.sub_account_id for r in rows} == {"0039de71-ca37-4a17-a104-17665a50e7fc"}
    assert [r.region_id for r in rows] == ["US East 2"] * 3
    assert [json.loads(r.tags or "null") for r in rows] == [{"project": "p1"}] * 3
    assert [r.x_cost_component for r in rows] == ["network", "storage", "storage"]
    assert rows[1].resource_id == source[1]["InstanceId"]


LEGACY_ENGLISH = [
    "DepartmentName", "AccountName", "AccountOwnerId", "SubscriptionGuid", "SubscriptionName",
    "ResourceGroup", "ResourceLocation", "UsageDateTime", "ProductName", "MeterCategory",
    "MeterSubcategory", "MeterId", "MeterName", "MeterRegion", "UnitOfMeasure", "UsageQuantity",
    "ResourceRate", "PreTaxCost", "CostCenter", "ConsumedService", "ResourceType", "InstanceId",
    "Tags", "OfferId", "AdditionalInfo", "ServiceInfo1",
]  # fmt: skip
# As the Azure portal wrote them for German users (kubecost/kubecost#1526) ...
LEGACY_GERMAN = [
    "Name der Abteilung (DepartmentName)", "Name des Kontos (AccountName)",
    "ID des Kontobesitzers (AccountOwnerId)", "Abonnement-GUID (SubscriptionGuid)",
    "Name des Abonnements (SubscriptionName)", "Ressourcengruppe (ResourceGroup)",
    "Ressourcenstandort (ResourceLocation)", "UsageDateTime (UsageDateTime)",
    "ProductName (ProductName)", "Kategorie der Verbrauchseinheit (MeterCategory)",
    "MeterSubcategory (MeterSubcategory)", "ID der Verbrauchseinheit (MeterId)",
    "Name der Verbrauchseinheit (MeterName)", "Region der Verbrauchseinheit (MeterRegion)",
    "Maßeinheit (UnitOfMeasure)", "UsageQuantity (UsageQuantity)", "Ressourcensatz (ResourceRate)",
    "PreTaxCost (PreTaxCost)", "Kostenstelle (CostCenter)", "Genutzter Dienst (ConsumedService)",
    "ResourceType (ResourceType)", "InstanceId (InstanceId)", "Tags (Tags)", "OfferId (OfferId)",
    "Zusätzliche Informationen (AdditionalInfo)", "Dienstinformation 1 (ServiceInfo1)",
]  # fmt: skip
# ... and for Spanish ones (project-koku/koku's header test). Sic: SubscriptionGuid's name.
LEGACY_SPANISH = [
    "Nombre de departamento (DepartmentName)", "Nombre de cuenta (AccountName)",
    "Id. del propietario de la cuenta (AccountOwnerId)",
    "Ubicación de los recursos (SubscriptionGuid)", "Nombre de la suscripción (SubscriptionName)",
    "ResourceGroup (ResourceGroup)", "Ubicación de los recursos (ResourceLocation)",
    "UsageDateTime (UsageDateTime)", "ProductName (ProductName)",
    "Categoría del medidor (MeterCategory)", "MeterSubcategory (MeterSubcategory)",
    "Id. de medidor (MeterId)", "Nombre del medidor (MeterName)",
    "Región del medidor (MeterRegion)", "Unidad de medida (UnitOfMeasure)",
    "UsageQuantity (UsageQuantity)", "Tasa de recursos (ResourceRate)", "PreTaxCost (PreTaxCost)",
    "Centro de coste (CostCenter)", "Servicio consumido (ConsumedService)",
    "ResourceType (ResourceType)", "InstanceId (InstanceId)", "Etiquetas (Tags)",
    "OfferId (OfferId)", "Información adicional (AdditionalInfo)",
    "Información del servicio 1 (ServiceInfo1)",
]  # fmt: skip


def _legacy_rows() -> list[dict[str, str]]:
    vm = {"SubscriptionGuid": "9ec51cfd-5ca7-4d76-8101-dd0a4abc5674", "UsageDateTime": "2026-11-02",
          "ResourceLocation": "eastus", "MeterCategory": "Virtual Machines",
          "MeterSubcategory": "NCads A100 v4 Series", "MeterName": "NC24ads A100 v4",
          "UsageQuantity": "24", "ResourceRate": "3.673", "PreTaxCost": "88.152",
          "InstanceId": samples.AZURE_VM, "Tags": '"Team": "ml","cost-center": "cc-42"',
          "AdditionalInfo": '{"ServiceType": "Standard_NC24ads_A100_v4", "VCPUs": 24}'}  # fmt: skip
    disk = {**vm, "MeterCategory": "Storage", "MeterSubcategory": "Premium SSD Managed Disks",
            "MeterName": "P40 LRS Disk", "UsageQuantity": "1", "PreTaxCost": "8.9",
            "AdditionalInfo": ""}  # fmt: skip
    return [vm, disk]


@pytest.mark.parametrize("header", [LEGACY_ENGLISH, LEGACY_GERMAN, LEGACY_SPANISH],
                         ids=["english", "german", "spanish"])  # fmt: skip
def test_localized_legacy_usage_export(session: Session, tmp_path: Path, header: list[str]) -> None:
    body = [[row.get(name, "") for name in LEGACY_ENGLISH] for row in _legacy_rows()]
    summary = service.import_file(session, path=_write(tmp_path / "usage.csv", header, body))

    assert summary.format == "azure-payg"
    assert summary.totals == {"USD": {"BilledCost": "97.052", "EffectiveCost": "97.052"}}
    assert summary.warnings[0] == "no currency column: amounts taken as USD"
    vm, disk = _rows(session)
    assert (vm.x_instance_type, vm.x_gpu_model, vm.x_gpu_count) == (
        "Standard_NC24ads_A100_v4", "A100-80GB", 1)  # fmt: skip
    assert json.loads(vm.tags or "{}") == {"team": "ml", "cost-center": "cc-42"}
    assert (disk.x_gpu_model, disk.x_cost_component) == (None, "storage")
    assert vm.charge_period_start == datetime(2026, 11, 2, tzinfo=UTC)


# Cost details in Brazilian Portuguese: the names a public parser of these files reads; the
# portal writes "Name (Name)" where it has no translation.
PORTUGUESE = {"MeterCategory": "CategoriaDoMedidor", "MeterSubCategory": "SubcategoriaDoMedidor",
              "MeterName": "NomeDoMedidor", "Quantity": "Quantidade", "Product": "Produto",
              "Cost": "Custo", "UnitOfMeasure": "UnidadeDeMedida",
              "ResourceId": "IdDoRecurso"}  # fmt: skip


def test_localized_cost_details(session: Session, tmp_path: Path) -> None:
    english = tmp_path / "english.csv"
    billed = samples.write_azure(english, 2)
    with english.open(newline="") as f:
        header, *body = list(csv.reader(f))
    localized = [f"{PORTUGUESE.get(h, h)} ({h})" for h in header]

    summary = service.import_file(session, path=_write(tmp_path / "custos.csv", localized, body))

    assert summary.format == "azure-ea"
    assert Decimal(summary.totals["USD"]["BilledCost"]) == billed
    rows = _rows(session)
    assert {(r.x_instance_type, r.x_gpu_model, r.resource_id) for r in rows} == {
        ("Standard_ND96asr_v4", "A100", samples.AZURE_VM)
    }


@pytest.mark.parametrize(
    "tags",
    ['"Team": "research","cost-center": "cc-42"', '{"Team": "research", "cost-center": "cc-42"}'],
    ids=["ea-without-braces", "json"],
)
def test_azure_team_tag_reaches_the_team_rules(session: Session, tmp_path: Path, tags: str) -> None:
    """Azure tag names are case-insensitive: "Team" is the rules' "tag:team"."""
    node = Node(name="az-1", instance_id=samples.AZURE_VM, labels={},
                created_at=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
    session.add(node)
    session.flush()
    samples.write_azure(tmp_path / "ea.csv", 1)
    with (tmp_path / "ea.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0]["Tags"] = tags
    with (tmp_path / "tagged.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, samples.AZURE_HEADER)
        writer.writeheader()
        writer.writerows(rows)

    summary = service.import_file(session, path=tmp_path / "tagged.csv")

    assert summary.rows_matched == 1
    (row,) = _rows(session)
    assert json.loads(row.tags or "{}") == {"team": "research", "cost-center": "cc-42"}
    assert owner_team(None, node_infos(session, [node.id])[node.id], DEFAULT_RULES) == "research"


# -- OCI -----------------------------------------------------------------------------------------
def test_oci_cost_report(session: Session) -> None:
    """The first rows of a real OCI cost report (finopsfoundation/focus_converters' test file)."""
    summary = service.import_file(session, path=OCI_SAMPLE)

    assert summary.format == "oci"
    source = _read(OCI_SAMPLE)
    direct = _sum(source, "cost/myCost")  # "2.323760000E-9" and "6.266090E-12" too
    assert Decimal(summary.totals["USD"]["BilledCost"]) == direct
    assert Decimal(summary.totals["USD"]["ContractedCost"]) == direct
    rows = _rows(session)
    assert len(rows) == len(source) == 12
    first = rows[0]
    assert (first.charge_period_start, first.charge_period_end) == (
        datetime(2023, 11, 13, 10, tzinfo=UTC), datetime(2023, 11, 13, 11, tzinfo=UTC))  # fmt: skip
    assert first.billing_period_start == datetime(2023, 11, 1, tzinfo=UTC)
    assert (first.provider_name, first.service_name, first.region_id) == (
        "Oracle", "DATABASE", "us-sanjose-1")  # fmt: skip
    assert first.sub_account_id == source[0]["lineItem/tenantId"]
    assert first.x_resource_key == source[0]["product/resourceId"]
    assert (
        json.loads(first.tags or "{}")["Oracle-Tags.CreatedBy"] == "default/phil.newman@oracle.com"
    )
    assert rows[1].tags is None  # a row without tags
    compute = next(r for r in rows if r.service_name == "COMPUTE")
    assert (compute.charge_description, compute.x_cost_component) == (
        "Standard - E4 - Memory", "memory")  # fmt: skip


# -- the four FOCUS costs ------------------------------------------------------------------------
def test_focus_totals_show_the_four_costs(session: Session) -> None:
    source = _read(FOCUS_SAMPLE)
    summary = service.import_file(session, path=FOCUS_SAMPLE)
    assert summary.totals == {
        "USD": {name: f"{_sum(source, name).normalize():f}"
                for name in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")}
    }  # fmt: skip
    rows = _rows(session)
    assert [r.contracted_cost for r in rows] == [
        None if s["ContractedCost"] == "NULL" else Decimal(s["ContractedCost"]) for s in source
    ]


def test_totals_show_list_cost_where_the_export_has_one(session: Session, tmp_path: Path) -> None:
    cur = DATA / "aws_cur_legacy_sample.csv"
    totals = service.import_file(session, path=cur).totals["USD"]
    assert list(totals) == ["BilledCost", "EffectiveCost", "ListCost"]
    assert Decimal(totals["ListCost"]) == _sum(_read(cur), "pricing/publicOnDemandCost")

    ea = DATA / "EA_ActualCost_Small.csv"
    (totals,) = service.import_file(session, path=ea).totals.values()
    assert list(totals) == ["BilledCost", "EffectiveCost", "ListCost"]
    assert Decimal(totals["ListCost"]) == _sum(_read(ea), "PayGPrice", "Quantity")

    samples.write_gcp(tmp_path / "gcp.csv", 2)
    totals = service.import_file(session, path=tmp_path / "gcp.csv").totals["USD"]
    assert list(totals) == ["BilledCost", "EffectiveCost"]
