"""The quick reference's import paths (``utils.training...``), re-exporting trainforge. No logic lives here."""
