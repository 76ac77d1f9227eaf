"""Reading rules and runs back: alignment with the gradient (``alignment``), result tables beside the
published ones (``report``) and figures (``plots``, needs matplotlib). Import the submodules."""
