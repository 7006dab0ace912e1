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


TORCH = ("torch==2.13.0", "numpy", "pandas>=2", "pyarrow>=14", "pillow>=10")
TORCH_MODULE = "crispml_algos.torch_models"
_epochs = Param("epochs", "int", 50, 1, 10_000, help="Passes over the training part.")
_lr = Param("learning_rate", "float", 0.01, 1e-5, 1.0, help="Adam's step size.", log=True)
_batch = Param("batch_size", "int", 32, 1, 4096, help="Rows per gradient step.")
_mlp_params = (
    Param("hidden", "int", 64, 4, 1024, help="Units per hidden layer."),
    Param("layers", "int", 2, 1, 6, help="Hidden layers."),
    _epochs,
    _lr,
    _batch,
    Param("weight_decay", "float", 0.0, 0.0, 1.0, help="L2 penalty (Adam's weight decay)."),
)


def _torch(name: str, title: str, task: str, params: tuple[Param, ...], text: str) -> AlgorithmSpec:
    return AlgorithmSpec(name, title, task, params, TORCH, TORCH_MODULE, text, ("pytorch",))


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
    _torch(
        "mlp_classifier", "Neural network, MLP (classification)", "classification", _mlp_params,
        "A multilayer perceptron trained with Adam on the CPU (PyTorch).",
    ),
    _torch(
        "mlp_regressor", "Neural network, MLP (regression)", "regression", _mlp_params,
        "A multilayer perceptron on a standardised target (PyTorch).",
    ),
    _torch(
        "unet_segmentation", "U-Net (segmentation)", "segmentation",
        (Param("epochs", "int", 30, 1, 1000, help="Passes over the training images."),
         Param("learning_rate", "float", 0.003, 1e-5, 1.0, help="Adam's step size.", log=True),
         Param("batch_size", "int", 8, 1, 256, help="Images per gradient step."),
         Param("base_channels", "int", 8, 2, 64, help="Width of the first level; doubles below.")),
        "A small U-Net trained from scratch on the CPU: per-pixel classes, IoU and Dice.",
    ),
]  # fmt: skip
