from loopml.services.dataset.server import main

main()
