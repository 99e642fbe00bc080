// A business handler: changes the ledger through db (no BEGIN/COMMIT: the library owns the transaction).
package dev.sagad.participant;

import java.sql.Connection;
import java.sql.SQLException;

@FunctionalInterface
public interface Handler {
    /** An SQLException is a ledger error: everything rolls back and sagad gets retry LEDGER_ERROR. */
    Result handle(Connection db, Command cmd) throws SQLException;
}
