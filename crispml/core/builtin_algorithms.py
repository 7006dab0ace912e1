"""The built-in algorithms' declarations (registered in the ``crispml.algorithms`` entry points).

Their job-side code is in ``crispml/jobside/crispml_algos/``.
"""

from __future__ import annotations

from crispml.core.algorithms import AlgorithmSpec, Param

SKLEARN = ("scikit-learn>=1.5", "pandas>=2", "pyarrow>=14", "skops>=0.10")
SKLEARN_MODULE = "crispml_algos.sklearn_models"

_trees = Param("n_estimators", "int", 100, 1, 2000, help="Number of trees.")
_depth = Param("max_depth", "int", 0, 0, 100, help="Deepest a tree may grow; 0: no limit.")
_leaf = Param("min_samples_leaf", "int", 1, 1, 1000, help="Fewest rows in a leaf.")
_rate = Param("learning_rate", "float", 0.1, 0.001, 1.0, help="Shrinks each tree's step.", log=True)
_gb_depth = Param("max_depth", "int", 3, 1, 20, help="Depth of each tree.")


def _sk(name: str, title: str, task: str, params: tuple[Param, ...], text: str) -> AlgorithmSpec:
    return AlgorithmSpec(
        name, title, task, params, SKLEARN, SKLEARN_MODULE, text, ("scikit-learn",)
    )


ALGORITHMS: list[AlgorithmSpec] = [
    _sk(
        "logistic_regression", "Logistic regression", "classification",
        (Param("C", "float", 1.0, 1e-4, 1e4, help="Inverse regularisation strength.", log=True),
         Param("max_iter", "int", 1000, 10, 100_000, help="Most solver iterations.")),
        "A linear model of the class probabilities; a strong, fast baseline.",
    ),
    _sk(
        "random_forest_classifier", "Random forest (classification)", "classification",
        (_trees, _depth, _leaf), "Many decorrelated decision trees voting; robust, little tuning.",
    ),
    _sk(
        "gradient_boosting_classifier", "Gradient boosting (classification)", "classification",
        (_trees, _rate, _gb_depth), "Shallow trees fitted one after another on the errors left.",
    ),
    _sk(
        "knn_classifier", "k nearest neighbours", "classification",
        (Param("n_neighbors", "int", 5, 1, 500, help="Neighbours that vote."),
         Param("weights", "choice", "uniform", choices=("uniform", "distance"),
               help="Equal votes, or closer neighbours count more.")),
        "The classes of the most similar training rows.",
    ),
    _sk(
        "ridge_regression", "Linear regression (ridge)", "regression",
        (Param("alpha", "float", 1.0, 0.0, 1e6, help="L2 regularisation strength."),),
        "Least squares with a penalty on large coefficients.",
    ),
    _sk(
        "random_forest_regressor", "Random forest (regression)", "regression",
        (_trees, _depth, _leaf), "Many decision trees averaged.",
    ),
    _sk(
        "gradient_boosting_regressor", "Gradient boosting (regression)", "regression",
        (_trees, _rate, _gb_depth), "Shallow trees fitted one after another on the residuals.",
    ),
]  # fmt: skip
