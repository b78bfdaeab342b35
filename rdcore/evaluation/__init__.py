"""Scoring image files, metrics, evaluation on MVTec layouts, recalibration and reports."""
