"""Reading runs and models back: result tables beside the published ones (``report``), figures
(``plots``, needs matplotlib), sign checks (``sign``), width scaling (``width``) and cluster quality
(``clusters``). Nothing here trains; the angles to BP that both training and analysis measure are
in ``gevb.alignment``. Import the submodules."""
