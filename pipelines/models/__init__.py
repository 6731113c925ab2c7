"""pipelines' models: curated datasets and their versions, deliveries, model versions and promotions."""

from pipelines.models.assessments import AssessmentSync, MlflowDatasetExport
from pipelines.models.datasets import Dataset, DatasetRow, DatasetVersion
from pipelines.models.exports import ExportJob
from pipelines.models.monitoring import Granularity, MonitoringBucket, MonitoringRefresh, MonitoringValue
from pipelines.models.promotion import (
    Approval,
    Environment,
    ModelVersion,
    PromotionGate,
    PromotionRequest,
    Rollout,
    RolloutStep,
)
from pipelines.models.pushes import DeliveryTarget, Push, TargetKind

__all__ = [
    "Approval",
    "AssessmentSync",
    "Dataset",
    "DatasetRow",
    "DatasetVersion",
    "DeliveryTarget",
    "Environment",
    "ExportJob",
    "Granularity",
    "MlflowDatasetExport",
    "ModelVersion",
    "MonitoringBucket",
    "MonitoringRefresh",
    "MonitoringValue",
    "PromotionGate",
    "PromotionRequest",
    "Push",
    "Rollout",
    "RolloutStep",
    "TargetKind",
]
