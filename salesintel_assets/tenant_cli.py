"""The tenant commands of ``salesintel``: run one tenant or all of them,
add and list tenants, back a tenant up and restore it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from salesintel_assets.domain.common.tenants import DEFAULT_TENANT


def add_run_options(run_cmd: argparse.ArgumentParser) -> None:
    run_cmd.add_argument("--tenant", help="run for this sales org of the tenants file (default: the default tenant)")
    run_cmd.add_argument("--all-tenants", dest="all_tenants", action="store_true",
                         help="one run per tenant (the default one and every one in the tenants file)")
    run_cmd.add_argument("--executor", choices=["in_process", "multiprocess"],
                         help="SALESINTEL_EXECUTOR (default in_process; multiprocess runs tenants side by side)")
    run_cmd.add_argument("--parallel", type=int, default=2, help="tenants run at the same time (multiprocess)")


def add_commands(commands, home_help: str) -> None:
    tenant_cmd = commands.add_parser("tenant", help="sales orgs: add one, list them")
    tenant_sub = tenant_cmd.add_subparsers(dest="tenant_command", required=True)
    add = tenant_sub.add_parser("add", help="add a sales org to the tenants file and register it")
    add.add_argument("name")
    add.add_argument("--csv", help="its CRM export (source csv); without it the sample CRM")
    add.add_argument("--org", help="its sales-org CSV")
    add.add_argument("--rules", help="its rules file")
    add.add_argument("--as-of", dest="as_of", help="its analysis date, YYYY-MM-DD")
    add.add_argument("--model-name", dest="model_name", help="its MLflow registered model (default deal_risk_NAME)")
    add.add_argument("--slack-token-env", dest="slack_token_env",
                     help="NAME of the environment variable that holds its Slack bot token")
    add.add_argument("--replace", action="store_true", help="replace an existing entry")
    add.add_argument("--home", help=home_help)
    add.set_defaults(handler=tenant_add)
    listing = tenant_sub.add_parser("list", help="the tenants and their folders")
    listing.add_argument("--home", help=home_help)
    listing.set_defaults(handler=tenant_list)
    backup_cmd = commands.add_parser("backup", help="copy a tenant's warehouse, lake, ledgers and model registry")
    backup_cmd.add_argument("--tenant", default=DEFAULT_TENANT)
    backup_cmd.add_argument("--to", dest="target", required=True, help="a new or empty folder")
    backup_cmd.add_argument("--home", help=home_help)
    backup_cmd.set_defaults(handler=backup)
    restore_cmd = commands.add_parser("restore", help="put a tenant back from a backup")
    restore_cmd.add_argument("--tenant", default=DEFAULT_TENANT)
    restore_cmd.add_argument("--from", dest="source", required=True, help="a folder written by salesintel backup")
    restore_cmd.add_argument("--replace", action="store_true", help="replace the tenant's current data")
    restore_cmd.add_argument("--home", help=home_help)
    restore_cmd.set_defaults(handler=restore)


def _home(args) -> Path:
    from salesintel_assets.domain.common.storage import DEFAULT_HOME

    return Path(getattr(args, "home", None) or os.environ.get("SALESINTEL_HOME") or DEFAULT_HOME).resolve()


def tenant_add(args) -> int:
    from salesintel_assets.domain.common.tenants import TenantConfig, TenantError, add_tenant

    def absolute(path):
        return path and str(Path(path).resolve())

    fields = {"source": "csv" if args.csv else "sample", "csv": absolute(args.csv), "org": absolute(args.org),
              "rules": absolute(args.rules),
              "as_of": args.as_of, "model_name": args.model_name, "slack_token_env": args.slack_token_env}
    try:
        config = TenantConfig(**{k: v for k, v in fields.items() if v is not None})
        path = add_tenant(_home(args), args.name, config, replace=args.replace)
    except (TenantError, ValueError) as exc:
        print(f"salesintel tenant add: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    # Registered in the project's instance now (a running daemon's register_tenants sensor would too).
    from salesintel_assets.instance import project_instance
    from salesintel_assets.resources.tenancy import ensure_tenants

    ensure_tenants(project_instance(_home(args)), [args.name])
    print(f"tenant {args.name} is in {path}")
    return 0


def tenant_list(args) -> int:
    from salesintel_assets.domain.common.tenants import TenantError, tenant_names, tenant_root

    try:
        names = tenant_names(_home(args))
    except TenantError as exc:
        print(f"salesintel tenant list: {exc}", file=sys.stderr)
        return 2
    for name in names:
        print(f"{name}\t{tenant_root(_home(args), name)}")
    return 0


def run_tenants_command(args, log_level: str) -> int:
    """``salesintel run --tenant X`` or ``--all-tenants``: one run per tenant;
    each tenant's outcome on its own line, the worst exit code."""
    from salesintel_assets.definitions import build_definitions
    from salesintel_assets.domain.common.tenants import TenantError, resolve_tenant, tenant_names
    from salesintel_assets.domain.common.rules import RulesError
    from salesintel_assets.domain.ingestion.blocked import BlockedInput
    from salesintel_assets.executors import ExecutorError, executor_named
    from salesintel_assets.instance import project_instance
    from salesintel_assets.resources.factory import ConfigurationError, environment_resources
    from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
    from salesintel_assets.run_outcome import EXIT_BLOCKED, read_outcome
    from salesintel_assets.summary import run_summary
    from salesintel_assets.tenant_runs import run_tenants

    home = _home(args)
    try:
        names = tenant_names(home) if args.all_tenants else [resolve_tenant(home, args.tenant).name]
    except TenantError as exc:
        print(f"salesintel: {exc}", file=sys.stderr)
        return EXIT_BLOCKED
    executor = args.executor or os.environ.get("SALESINTEL_EXECUTOR") or "in_process"
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    try:  # the environment is checked before any run starts, as for one tenant
        executor_named(executor)
        defs = build_definitions(environment_resources(home=str(home)), executor_named(executor))
    except (BlockedInput, ConfigurationError, ExecutorError, RulesError) as exc:
        print(f"salesintel: {exc}", file=sys.stderr)
        return EXIT_BLOCKED
    print(f"salesintel: running {args.job} for {', '.join(names)} ({executor}) ...", flush=True)
    instance = project_instance(home)  # the runs show in the Dagster UI, one partition per tenant
    if executor == "in_process":  # as `salesintel run`: a re-run with nothing new still delivers what it owes
        from salesintel_assets.cli import _failed_warnings
        from salesintel_assets.main_run import execute

        results = {}
        for name in names:
            warehouse = Warehouse(home=SalesintelHome(path=str(resolve_tenant(home, name).root)))
            results[name] = execute(defs, args.job, instance, run_config, warehouse, warnings=_failed_warnings,
                                    partition_key=name)
    else:
        results = run_tenants(names, instance, args.job, str(home), executor, parallel=args.parallel,
                              run_config=run_config)
    worst = 0
    for name, result in results.items():
        if getattr(result, "crashed", None):
            print(f"tenant {name}: {result.crashed}", file=sys.stderr)
            worst = max(worst, 1)
            continue
        outcome = read_outcome(result)
        warehouse = Warehouse(home=SalesintelHome(path=str(resolve_tenant(home, name).root)))
        if len(names) == 1 and not outcome.blocked and warehouse.exists():
            print(run_summary(warehouse, outcome.failed_checks))
        success = all(one.success for one in result) if isinstance(result, list) else result.success
        verdict = outcome.blocked or ("succeeded" if success and not outcome.exit_code else "failed")
        print(f"tenant {name}: {verdict}", file=sys.stderr if outcome.exit_code else sys.stdout)
        for line in outcome.lines():
            print(line, file=sys.stderr)
        worst = max(worst, outcome.exit_code or (0 if success else 1))
    return worst


def backup(args) -> int:
    from salesintel_assets.domain.common.backup import BackupError, backup_tenant
    from salesintel_assets.domain.common.tenants import TenantError, resolve_tenant

    try:
        tenant = resolve_tenant(_home(args), args.tenant)
        manifest = backup_tenant(tenant.root, Path(args.target), tenant.name)
    except (BackupError, TenantError) as exc:
        print(f"salesintel backup: {exc}", file=sys.stderr)
        return 2
    print(f"tenant {tenant.name} backed up to {Path(args.target).resolve()} ({len(manifest['files'])} files)")
    return 0


def restore(args) -> int:
    from salesintel_assets.domain.common.backup import BackupError, restore_tenant
    from salesintel_assets.domain.common.tenants import TenantError, resolve_tenant

    try:
        tenant = resolve_tenant(_home(args), args.tenant)
        manifest = restore_tenant(Path(args.source), tenant.root, replace=args.replace)
    except (BackupError, TenantError) as exc:
        print(f"salesintel restore: {exc}", file=sys.stderr)
        return 2
    print(f"tenant {tenant.name} restored into {tenant.root} from the backup of {manifest['created_at']}")
    return 0
