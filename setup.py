from setuptools import find_packages, setup

setup(
    name="salesintel",
    version="0.1.0",
    description="Sales intelligence and alert platform built on Dagster software-defined assets.",
    packages=find_packages(exclude=["salesintel_assets_tests*"]),
    package_data={"salesintel_assets": ["rules.yaml", "service/templates/*.html", "service/static/*.css"]},
    python_requires=">=3.11,<3.13",
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-duckdb==0.29.27",
        "dagster-slack==0.29.27",
        "duckdb>=1.1,<3",
        "pandas>=2.2,<3",
        "pandera>=0.35,<0.36",
        "numpy>=2.0,<3",
        "scipy>=1.13,<2",
        "scikit-learn>=1.6,<2",
        "mlflow>=3.17,<4",
        "skops>=0.13",
        "slack_sdk>=3.33,<4",
        "pyarrow>=17",
        "pyyaml>=6",
        "tabulate>=0.9",
        "pydantic>=2.7,<3",
        "matplotlib>=3.8",
        "filelock>=3.12",
        "hubspot-api-client>=12,<13",
        "simple-salesforce>=1.12,<2",
        "urllib3>=2,<3",
        "slack_bolt>=1.20,<2",
        "fastapi>=0.110",
        "uvicorn>=0.29",
        "jinja2>=3.1",
        "python-multipart>=0.0.9",
    ],
    extras_require={
        # deploy: the Dagster instance on PostgreSQL (deploy/dagster.yaml).
        "deploy": ["dagster-postgres==0.29.27"],
        # dev: the tests also start a real PostgreSQL on loopback (pgserver ships the server binaries).
        # threadpoolctl: each test worker's share of the cores (conftest.py).
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.5", "threadpoolctl>=3.1", "httpx>=0.27",
                "playwright>=1.45", "dagster-postgres==0.29.27", "pgserver>=0.1.4,<0.2"],
    },
    entry_points={
        "console_scripts": ["salesintel=salesintel_assets.cli:main"],
    },
)
