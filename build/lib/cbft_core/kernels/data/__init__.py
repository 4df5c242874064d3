"""Data: base image sets, the box and Dominoes cues, and the counterfactual views."""
from .base import BASE_SETS, load_base
from .cues import cue_class_colours, cue_class_positions
from .imageset import ImageSet, batches, normalize
from .views import CUES, VIEWS, ViewPlan, counterfactual_views, cue_mask, make_view, plan_view, render_view

__all__ = [
    "BASE_SETS", "CUES", "VIEWS", "ImageSet", "ViewPlan", "batches", "counterfactual_views",
    "cue_class_colours", "cue_class_positions", "cue_mask", "load_base", "make_view", "normalize",
    "plan_view", "render_view",
]
