"""Salesforce records (REST query JSON) into the export format, stage
history, activities and the org chain: plain functions on plain dicts."""

import pandas as pd
import pytest

from salesintel_assets.sources import salesforce as sf


def opportunity(**fields):
    base = {"attributes": {"type": "Opportunity"}, "Id": "006A", "OwnerId": "005R", "StageName": "Qualification",
            "Amount": 1200.0, "CloseDate": "2026-08-01", "CreatedDate": "2026-05-02T09:15:00.000+0000",
            "IsClosed": False, "IsWon": False, "SystemModstamp": "2026-06-01T10:11:12.000+0000",
            "AccountId": "001A", "LeadSource": "Referral", "Type": "Pro", "LastStageChangeDate": None,
            "Account": {"attributes": {"type": "Account"}, "Industry": "SaaS", "BillingCountry": "Europe"}}
    return {**base, **fields}


STAGES = sf.StageMap.from_records(
    [{"ApiName": "Closed Won", "MasterLabel": "Won!", "IsClosed": True, "IsWon": True},
     {"ApiName": "Closed Lost", "IsClosed": True, "IsWon": False},
     {"ApiName": "Qualification", "IsClosed": False, "IsWon": False}],
    lambda name: {"qualification": "Qualified", "needs analysis": "Demo", "value proposition": "Demo"}.get(name.lower()),
    "Closed")


def test_required_field_missing_is_named_and_custom_fields_are_kept():
    with pytest.raises(sf.SalesforceSchemaError, match=r"Opportunity\.Amount"):
        sf.plan_fields("Opportunity", set(sf.OPPORTUNITY_REQUIRED) - {"Amount"}, sf.OPPORTUNITY_REQUIRED)
    soft = sf.plan_fields("Opportunity", set(sf.OPPORTUNITY_REQUIRED) - {"Amount"}, sf.OPPORTUNITY_REQUIRED,
                          hard=sf.OPPORTUNITY_KEYS)
    assert soft.missing == ("Amount",) and "Amount" not in soft.selected
    assert "deal_amount" not in sf.deals_frame([opportunity()], soft, sf.DealFields(), STAGES, {}).columns
    plan = sf.plan_fields("Opportunity", set(sf.OPPORTUNITY_REQUIRED) | {"LeadSource", "Region__c"},
                          sf.OPPORTUNITY_REQUIRED, sf.OPPORTUNITY_OPTIONAL, keep_custom=True)
    assert plan.custom == ("Region__c",)
    assert "LeadSource" in plan.selected and "AccountId" not in plan.selected   # optional, absent in this org


def test_opportunities_become_export_rows():
    plan = sf.plan_fields("Opportunity", set(sf.OPPORTUNITY_REQUIRED + sf.OPPORTUNITY_OPTIONAL) | {"Type", "X__c"},
                          sf.OPPORTUNITY_REQUIRED, sf.OPPORTUNITY_OPTIONAL + ("Type",), keep_custom=True)
    records = [
        opportunity(X__c="kept"),
        opportunity(Id="006B", StageName="Closed Won", IsClosed=True, IsWon=True, CloseDate="2026-06-01",
                    Amount=999.5, LastStageChangeDate="2026-06-01T08:00:00.000+0000"),
        opportunity(Id="006C", StageName="Closed Lost", IsClosed=True, Amount=None, Account=None),
    ]
    deals = sf.deals_frame(records, plan, sf.DealFields(), STAGES, {"006C": "Demo"}).set_index("deal_id")
    assert deals.loc["006A", ["deal_stage", "outcome", "closed_date", "sales_cycle_days"]].tolist() == \
        ["Qualified", "Open", "", ""]
    assert deals.loc["006A", ["created_date", "last_modified", "industry", "region", "product_type"]].tolist() == \
        ["2026-05-02", "2026-06-01T10:11:12", "SaaS", "Europe", "Pro"]
    assert deals.loc["006B", ["deal_stage", "outcome", "closed_date", "sales_cycle_days", "deal_amount",
                              "stage_entered_date"]].tolist() == ["Closed", "Won", "2026-06-01", "30", "999.5",
                                                                  "2026-06-01"]
    assert deals.loc["006C", ["deal_stage", "outcome", "deal_amount", "industry"]].tolist() == ["Demo", "Lost", "", ""]
    assert deals.loc["006A", "X__c"] == "kept"


def test_history_keeps_stage_entries_in_the_rules_stages():
    assert STAGES.closed == {"Closed Won", "Won!", "Closed Lost"} and STAGES.won == {"Closed Won", "Won!"}
    rows = [("006A", "Qualification", "2026-05-02T09:00:00.000+0000"),
            ("006A", "Qualification", "2026-05-05T09:00:00.000+0000"),   # an amount edit, same stage
            ("006A", "Needs Analysis", "2026-05-10T09:00:00.000+0000"),
            ("006A", "Value Proposition", "2026-05-12T09:00:00.000+0000"),   # also Demo
            ("006A", "Custom Stage", "2026-05-20T09:00:00.000+0000"),   # unmapped: kept for the gate to flag
            ("006A", "Won!", "2026-06-01T09:00:00.000+0000"),
            ("006B", "Qualification", "2026-05-02T09:00:00.000+0000"),
            ("006B", "Closed Lost", "2026-05-09T09:00:00.000+0000")]
    history = sf.history_frame([{"OpportunityId": d, "StageName": s, "CreatedDate": t} for d, s, t in rows], STAGES)
    assert history.groupby("deal_id")["stage"].agg(list).to_dict() == {
        "006A": ["Qualified", "Demo", "Custom Stage", "Closed"], "006B": ["Qualified"]}
    assert history["entered_date"].iloc[0] == pd.Timestamp("2026-05-02 09:00")
    assert sf.last_open_stages(history, "Closed") == {"006A": "Custom Stage", "006B": "Qualified"}


def test_tasks_and_events_become_sales_touches():
    tasks = [{"Id": "00T1", "WhatId": "006A", "OwnerId": "005R", "TaskSubtype": "Call", "ActivityDate": "2026-05-03"},
             {"Id": "00T2", "WhatId": "006A", "OwnerId": "005R", "TaskSubtype": "Task", "Type": "Email",
              "ActivityDate": None, "CreatedDate": "2026-05-04T23:30:00.000+0000"},
             {"Id": "00T3", "WhatId": "006A", "OwnerId": "005R", "TaskSubtype": "Task", "ActivityDate": "2026-05-05"}]
    events = [{"Id": "00U1", "WhatId": "006A", "OwnerId": "005R", "StartDateTime": "2026-05-06T14:00:00.000+0000"}]
    activities = sf.activities_frame(tasks, events).set_index("activity_id")
    assert activities["activity_type"].to_dict() == {"00T1": "call", "00T2": "email", "00U1": "meeting"}
    assert activities.loc["00T2", "activity_date"] == pd.Timestamp("2026-05-04")


def test_manager_chain_from_users():
    users = [{"Id": "CEO", "Name": "Ceo", "ManagerId": None},
             {"Id": "CRO", "Name": "Cro", "ManagerId": "CEO", "Email": "cro@x"},
             {"Id": "MGR", "Name": "Mgr", "ManagerId": "CRO", "Email": "mgr@x", "Department": "EMEA"},
             {"Id": "REP", "Name": "Rep", "ManagerId": "MGR", "Email": "rep@x", "Department": "EMEA"},
             {"Id": "LONE", "Name": "Lone", "ManagerId": None},
             {"Id": "A", "Name": "A", "ManagerId": "B"}, {"Id": "B", "Name": "B", "ManagerId": "A"}]
    org = sf.org_frame(users).set_index("sales_rep_id")
    assert org.loc["REP", ["manager_id", "manager_email", "cro_id", "team"]].tolist() == ["MGR", "mgr@x", "CEO", "EMEA"]
    assert org.loc["LONE", ["manager_id", "cro_id"]].tolist() == ["", ""]
    assert org.loc["A", "manager_id"] == "B"   # a cycle ends the walk instead of looping
