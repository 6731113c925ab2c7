"""Log the demo RAG chain as two versions of the registered model ``support-assistant``.

Version 1 is the naive variant (top_k=1, first sentence of the best passage), version 2 the
better one (top_k=3, sentences ranked by overlap with the question, with citations); see
``pipelines.demo_rag.chain.VARIANTS``. Each version carries its code, a snapshot of the demo
corpus and its settings, and is tagged ``reviewdesk.demo_variant`` so :func:`demo_models_ensure`
is idempotent: it only logs the variants the registry does not have yet.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipelines import demo_rag
from pipelines.adapters import mlflow_registry
from pipelines.demo_rag.chain import VARIANTS, Passage
from pipelines.demo_rag.pyfunc_loader import model_data_write
from pipelines.wiring import mlflow_config
from reviewapp.demo.corpus import chunks_all
from reviewapp.demo.items import MODEL_NAME

EXPERIMENT_NAME = "reviewdesk-demo-models"
VARIANT_TAG = "reviewdesk.demo_variant"
# The model's code is imported as the top-level package "demo_rag" inside the logged model.
LOADER_MODULE = "demo_rag.pyfunc_loader"


@dataclass(frozen=True)
class DemoModel:
    variant: str
    version: mlflow_registry.ModelVersionInfo
    created: bool


def demo_passages() -> list[Passage]:
    return [Passage(doc_uri=c.doc_uri, title=c.title, heading=c.heading, body=c.body) for c in chunks_all()]


def demo_models_ensure(*, model_name: str = MODEL_NAME) -> list[DemoModel]:
    """Register each demo variant that the registry lacks; return all of them with their versions."""
    config = mlflow_config()
    existing = {
        v.tags[VARIANT_TAG]: v
        for v in mlflow_registry.model_versions_list(config, model_name=model_name)
        if VARIANT_TAG in v.tags
    }
    out = []
    for variant, rag_settings in VARIANTS.items():
        if variant in existing:
            out.append(DemoModel(variant, existing[variant], created=False))
            continue
        with tempfile.TemporaryDirectory(prefix="demo-rag-") as tmp:
            code = Path(tmp) / "demo_rag"
            shutil.copytree(Path(demo_rag.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__"))
            data = Path(tmp) / "data"
            model_data_write(data, passages=demo_passages(), settings=rag_settings)
            version = mlflow_registry.pyfunc_loader_model_register(
                config,
                model_name=model_name,
                experiment_name=EXPERIMENT_NAME,
                run_name=f"{model_name}-{variant}",
                loader_module=LOADER_MODULE,
                data_path=data,
                code_path=code,
                params=rag_settings.as_params(),
                tags={VARIANT_TAG: variant},
                description=f"Demo RAG chain, variant {variant}: {rag_settings.as_params()}",
            )
        out.append(DemoModel(variant, version, created=True))
    return out
