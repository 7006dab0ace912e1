from crispml.cli import main

main()
