"""Names of the data sets' label codes that are not part of the model's schema."""

RACES = ("White", "Black", "Asian", "Indian", "Others")  # UTKFace's race codes 0..4


def race_name(race: int) -> str:
    """UTKFace's name of race code `race`; 'unknown' for -1 (no race label) or another code."""
    return RACES[race] if 0 <= race < len(RACES) else "unknown"
