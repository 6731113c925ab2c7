"""pipelines' models: curated datasets and their versions, deliveries, model versions and promotions,
and end users' feedback."""

from pipelines.models.alerts import AlertEvent, AlertRule
from pipelines.models.assessments import AssessmentSync, MlflowDatasetExport
from pipelines.models.datasets import Dataset, DatasetRow, DatasetVersion
from pipelines.models.exports import ExportJob
from pipelines.models.feedback import Feedback
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
from pipelines.models.sources import Source, SourcedItem, SourceKind, SourcePull, SourceRun

__all__ = [
    "AlertEvent",
    "AlertRule",
    "Approval",
    "AssessmentSync",
    "Dataset",
    "DatasetRow",
    "DatasetVersion",
    "DeliveryTarget",
    "Environment",
    "ExportJob",
    "Feedback",
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
    "Source",
    "SourceKind",
    "SourcePull",
    "SourceRun",
    "SourcedItem",
    "TargetKind",
]
