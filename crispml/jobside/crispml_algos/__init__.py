"""crispml's built-in algorithms, job side: run in the algorithm's environment by crispml_train."""
